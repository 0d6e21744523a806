// The run config of edgerazor-train: one YAML file, typed and validated at load (torch-free).
//
//   run:           name, output_dir, seed                        -> RunSection
//   model:         teacher, student (defaults to the teacher)    -> ModelSection
//   quantization:  preset and/or select/function/overrides       -> config::QuantConfig
//                  (or the reference's qat_configuration block)
//   distillation:  loss_task_alpha + losses: [...]               -> distill::DistillObjectiveOptions
//                  (or the reference's kd_configuration block with loss_<i> entries)
//   data:          sources with weights, seq_len, packing, eval  -> data::DataConfig
//   train:         optimizer, lr schedule, steps, batch, ...     -> TrainSection
//   distributed:   backend, nproc_per_node, sharding                      -> DistributedSection
//
// Every error is a ConfigError "file:line:col: key.path: message"; unknown keys, wrong types and
// impossible values (negative lr, both max_steps and epochs, a schedule name we do not know, ...)
// all fail at load, before any model is read. `--set a.b=c` overrides edit the YAML tree before
// typing, so an overridden value is checked like one from the file.
//
// Relative paths (model folders, data files, output_dir) are resolved against the current working
// directory when the run starts, like torchtune and Hugging Face do; the config file's own folder
// plays no role. Keys and defaults: README.md "Config reference" and the struct comments below.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/data/data_config.h"
#include "edgerazor/distill/options.h"

namespace edgerazor::config {

struct RunSection {
  std::string name;                 // run folder name; default: the config file's stem
  std::string output_dir = "runs";  // the run lives in <output_dir>/<name>
  uint64_t seed = 3407;             // model-side RNG (and the data seed unless data.seed is set)
};

struct ModelSection {
  std::string teacher;              // HF folder; required when a distillation section is present
  std::string student;              // HF folder; default: the teacher (self-distillation)
};

struct TrainSection {
  std::string optimizer = "adamw";  // the only one: decoupled weight decay (PyTorch AdamW)
  double lr = 2e-5;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.01;
  bool decay_norm_and_bias = false; // HF excludes biases and norm weights from weight decay
  // constant | constant_with_warmup | linear | cosine | cosine_with_min_lr
  std::string lr_scheduler = "cosine";
  int64_t warmup_steps = 0;         // exclusive with warmup_ratio
  double warmup_ratio = 0.0;        // warmup = ceil(ratio * total optimizer steps)
  double min_lr = 0.0;              // cosine_with_min_lr floor (absolute lr)
  int64_t max_steps = 0;            // optimizer steps; exactly one of max_steps / epochs > 0
  double epochs = 0.0;              // passes over the training data (needs a finite data size)
  int64_t micro_batch_size = 1;     // sequences per forward pass (per rank)
  int64_t gradient_accumulation_steps = 1;
  // mean: the accumulated gradient is the mean over micro-batches (standard);
  // sum:  sum of per-micro-batch mean losses, the paper run's HF/DeepSpeed behaviour (spec §8.3).
  std::string accumulation = "mean";
  double max_grad_norm = 1.0;       // global L2 clip; 0 disables
  std::string precision = "auto";   // auto | bf16 | fp32 (auto: bf16 only with native bf16)
  bool gradient_checkpointing = false;  // per decoder layer (student)
  std::string device = "auto";      // cpu | cuda (cuda:LOCAL_RANK) | cuda:N | auto (cuda when a GPU is visible)
  int64_t log_interval = 1;         // optimizer steps between progress lines / metrics records
  int64_t eval_interval = 0;        // optimizer steps between evaluations; 0 = start and end only
  int64_t eval_batches = 8;         // micro-batches of held-out data per evaluation, whatever the world size
  bool eval_at_start = true;        // evaluate before the first step (the PTQ baseline)
  int64_t save_interval = 0;        // optimizer steps between checkpoints; 0 = end only
  int64_t keep_last = 2;            // complete checkpoints kept (older ones deleted)
  int64_t chunk_size = 256;         // tokens per chunk of the fused CE / logit-KD path
};

// Downstream tasks during training: lm-evaluation-harness task files run on the student as it
// is (fake-quantized), at the start, every `interval` steps and at the end, on rank 0; their
// metrics go to metrics.jsonl as type "tasks" ("story_cloze/acc,none"...).
struct EvalSection {
  std::vector<std::string> tasks;  // task YAML files
  int64_t interval = 0;            // optimizer steps between runs; 0 = with the start/end evaluation
  int64_t limit = 0;               // documents per task (0 = all)
  int64_t batch_size = 8;
  int64_t num_fewshot = -1;        // >= 0 overrides the task files
};

struct DistributedSection {
  std::string backend = "auto";     // auto (gloo on CPU, nccl on CUDA) | gloo | nccl
  int64_t nproc_per_node = 1;       // processes edgerazor-train launches on this machine
  // ZeRO stage over the data-parallel ranks (distributed/zero.h): none | optimizer (AdamW moments)
  // | gradients (+ gradients reduce-scattered into shards) | parameters (+ latent weights, gathered
  // per decoder layer; implies gradient checkpointing).
  std::string sharding = "none";
};

struct TrainConfig {
  RunSection run;
  ModelSection model;
  std::optional<QuantConfig> quantization;   // absent: no quantizers (plain (distilled) fine-tuning)
  // Absent: teacher-less training with plain CE (e.g. pretraining a teacher).
  std::optional<distill::DistillObjectiveOptions> distillation;
  data::DataConfig data;
  TrainSection train;
  EvalSection eval;
  DistributedSection distributed;
  std::string source;                        // the file it was read from ("" for text)
};

// One --set override: dotted key path (list elements as name[3]) and a YAML value.
struct Override {
  std::string key;
  std::string value;
};
// "train.lr=1e-5" -> {train.lr, 1e-5}; throws ConfigError without '='.
Override parse_override(const std::string& assignment);

// A device as train.device and --device spell it: cpu | cuda | cuda:N (N up to 4 digits) | auto.
// Syntax only; runtime::resolve_device decides what it means on this machine.
bool is_device_spec(const std::string& spec);

// check_files = false skips the file-system checks (model folders, data paths), e.g. to inspect a
// config written for another machine.
TrainConfig load_train_config(const std::string& path, const std::vector<Override>& overrides = {},
                              bool check_files = true);
TrainConfig parse_train_config(const std::string& yaml_text, const std::string& origin,
                               const std::vector<Override>& overrides = {}, bool check_files = true);

// Checks cross-section rules (also run by the loaders); throws ConfigError naming the key.
void validate(const TrainConfig& config);

// The fully resolved config (presets expanded, every default written out). Parsing this text
// gives the same config back.
std::string to_yaml(const TrainConfig& config);

// Learning-rate multiplier lambda(n) for optimizer step n = 0, 1, ... (the update at step n uses
// lr * lambda(n); HF semantics, spec distillation.md §8.3). `warmup` and `total` in steps.
double lr_lambda(const std::string& schedule, int64_t step, int64_t warmup, int64_t total,
                 double min_lr_ratio = 0.0);
// Warmup steps for a run of `total` optimizer steps (warmup_steps, or ceil(ratio * total)).
int64_t warmup_steps(const TrainSection& train, int64_t total);
// The schedule names lr_lambda accepts.
const std::vector<std::string>& lr_scheduler_names();

}  // namespace edgerazor::config
