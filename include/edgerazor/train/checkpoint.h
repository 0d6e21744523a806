// Implements: training checkpoints: atomic write, keep-last-N, find the newest complete one,
// restore weights + optimizer + RNG + trainer state.
//
// Layout of <run_dir>/checkpoints/step_<N>/ (N = optimizer steps done, e.g. step_200):
//   config.json, model.safetensors, tokenizer files   the student's latent fp32 weights as a
//                                                     Hugging Face folder (loads with io::load_pretrained)
//   quantization.yaml                                 config::to_yaml of the resolved quantization
//                                                     config, preset expanded (no preset key), so
//                                                     config::load_quant_config_file gives it back
//                                                     exactly (absent when the run quantizes nothing)
//   train_config.yaml                                 the resolved run config (config::to_yaml)
//   trainer_state/state.json                          step, schedule, data-loader position, seeds
//   trainer_state/optimizer.pt                        AdamW state (torch::serialize archive)
//   trainer_state/rng.pt                              CPU generator state
//   manifest.json                                     size and checksum of every file above
//   DONE                                              written last: the folder is complete
// The folder is written as checkpoints/.tmp_step_<N>, every file and folder fsync'ed, then renamed;
// a folder without DONE (or a .tmp_ one) is never resumed from and is removed by the next save.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "edgerazor/train/checkpoint_manifest.h"

namespace torch::optim {
class Optimizer;
}
namespace edgerazor::model {
class CausalLMImpl;
}

namespace edgerazor::train {

// trainer_state/state.json
struct TrainerState {
  int64_t step = 0;             // optimizer steps done
  int64_t total_steps = 0;      // of the whole run (schedule length)
  int64_t warmup_steps = 0;
  double lr = 0;                // lr of the last step taken
  int64_t tokens_seen = 0;      // real tokens through the student so far (this rank)
  double elapsed_seconds = 0;   // training time so far (all sessions)
  std::string data_state;       // data::DataLoader::state_json()
  uint64_t seed = 0;
  int world_size = 1;           // data-parallel ranks that wrote it (the data position is global)
  int64_t rows_per_step = 0;    // rows of one optimizer step over all ranks (0: not recorded, older checkpoints)
};

struct CheckpointInfo {
  std::string path;
  int64_t step = 0;
};

struct CheckpointContents {
  std::string tokenizer_source_dir;  // the student's model folder (tokenizer files copied from it)
  std::string quantization_yaml;     // "" = no quantization.yaml
  std::string config_yaml;           // resolved run config
};

// Writes step_<state.step> atomically and deletes all but the newest keep_last complete ones.
// Returns the final folder path.
std::string save_checkpoint(const std::string& run_dir, const model::CausalLMImpl& student,
                            const torch::optim::Optimizer& optimizer, const TrainerState& state,
                            const CheckpointContents& contents, int64_t keep_last);

// save_checkpoint in two halves, for state several processes write (sharded optimizer state,
// distributed/zero.h): stage_checkpoint writes everything but manifest.json and DONE into
// checkpoint_staging_dir(run_dir, step) (optimizer may be null: no optimizer.pt); other files may
// then be added there; commit_checkpoint writes the manifest (covering them) and DONE, renames the
// folder into place and prunes to keep_last. Both return the folder they leave.
std::string checkpoint_staging_dir(const std::string& run_dir, int64_t step);
std::string stage_checkpoint(const std::string& run_dir, const model::CausalLMImpl& student,
                             const torch::optim::Optimizer* optimizer, const TrainerState& state,
                             const CheckpointContents& contents);
std::string commit_checkpoint(const std::string& run_dir, int64_t step, int64_t keep_last);

// The step of a checkpoint folder's name ("step_200" -> 200); -1 for any other name, or for more
// than 18 digits (past int64).
int64_t checkpoint_folder_step(const std::string& folder_name);

// Complete checkpoints (DONE present), oldest first.
std::vector<CheckpointInfo> list_checkpoints(const std::string& run_dir);
std::optional<CheckpointInfo> latest_checkpoint(const std::string& run_dir);

// Loads weights into `student` (same architecture), the optimizer state (same parameter groups),
// the CPU RNG state, and returns the trainer state. FormatError naming the file on any mismatch.
TrainerState load_checkpoint(const std::string& checkpoint_dir, model::CausalLMImpl& student,
                             torch::optim::Optimizer& optimizer);
// optimizer null: weights, RNG and trainer state only; the checkpoint must hold sharded optimizer
// state (trainer_state/zero/), which the caller restores (distributed::ZeroOptimizer::load).
TrainerState load_checkpoint(const std::string& checkpoint_dir, model::CausalLMImpl& student,
                             torch::optim::Optimizer* optimizer);
TrainerState read_trainer_state(const std::string& checkpoint_dir);

}  // namespace edgerazor::train
