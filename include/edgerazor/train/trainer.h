// Implements: the QAD trainer recipe (torchtune style): a validated TrainConfig, setup(), a loop
// that fits on one screen, cleanup().
//
//   train::Trainer trainer(config::load_train_config("configs/tiny-stories260k-w1.58.yaml"));
//   trainer.setup();                        // models, quantizers, objective, data, optimizer, resume
//   train::TrainSummary s = trainer.train();
//   trainer.cleanup();
//
// setup(): loads the teacher (frozen, eval mode; bf16 when the run computes in bf16) and the
// student (fp32 latent weights), injects the quantizers, builds the objective (plain CE without a
// distillation section), the data loaders, AdamW and the schedule; with resume, restores the
// newest complete checkpoint of the run folder <run.output_dir>/<run.name>.
// train(): per optimizer step: lr from the schedule; gradient_accumulation_steps micro-steps of
// train::forward_backward; GradientSync::synchronize; clip; step. Logs every loss part to
// metrics.jsonl and the progress line; evaluates on data.eval_sources; checkpoints atomically.
// A NaN/inf loss or gradient stops with TrainingError naming the step and the last good
// checkpoint (no checkpoint is written from the bad state). SIGINT/SIGTERM (or request_stop())
// finish the current optimizer step, write a checkpoint and return with interrupted = true.
#pragma once

#include <iosfwd>
#include <memory>
#include <stdexcept>
#include <string>

#include "edgerazor/config/train_config.h"
#include "edgerazor/train/grad_sync.h"

namespace edgerazor::train {

class TrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TrainerOptions {
  bool resume = false;                          // continue from the newest complete checkpoint
  std::shared_ptr<GradientSync> gradient_sync;  // null: single process
  std::ostream* progress = nullptr;             // progress lines; null: std::cout (rank 0 only)
  bool quiet = false;                           // no progress lines at all
  bool handle_signals = true;                   // SIGINT/SIGTERM -> checkpoint and stop
};

struct TrainSummary {
  std::string run_dir;
  int64_t start_step = 0;           // where this session began (0, or the resumed step)
  int64_t steps = 0;                // optimizer steps done at the end
  int64_t total_steps = 0;
  bool interrupted = false;         // stopped by a signal / request_stop() (checkpoint written)
  std::string last_checkpoint;      // "" if none was written
  double initial_eval_loss = 0;     // NaN when not evaluated (step-0 eval = the PTQ baseline)
  double final_eval_loss = 0;       // NaN when not evaluated
  double teacher_eval_loss = 0;     // NaN without a teacher or eval data
  double tokens_per_second = 0;     // real tokens through the student / training seconds
};

class Trainer {
 public:
  explicit Trainer(config::TrainConfig config, TrainerOptions options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  void setup();
  TrainSummary train();
  void cleanup();

  const config::TrainConfig& config() const;
  std::string run_dir() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Asks a running train() to checkpoint after the current optimizer step and return (async-signal
// safe: this is what the SIGINT/SIGTERM handlers call).
void request_stop();

}  // namespace edgerazor::train
