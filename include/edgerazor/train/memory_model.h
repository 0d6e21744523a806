// Implements: predict_training_memory, the bytes one training rank holds at its peak, by part
// (weights, master copy, moments, gradients, quantized copies, teacher, activations), for each
// sharding stage (distributed/zero.h). The trainer prints it at start-up and logs it next to the
// measured peak resident set of training (metrics.jsonl "memory" record). Torch-free.
//
// The parts are not all alive at once; the model adds what is alive at the end of backward, the
// peak of a QAD step: latent weights, their quantized copies (the step's scope), gradients (all of
// them or the shard plus the outer unit), moments, the teacher, the activations still held there
// and the loss buffers, plus the process's measured resident set before any model was loaded.
// Activations are estimated from the shapes (per layer: the saved inputs of the norms, the
// A8-quantized inputs of every Linear, attention and MLP outputs in the compute dtype).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "edgerazor/model/model_config.h"

namespace edgerazor::train {

struct MemoryModelInput {
  model::ModelConfig student;
  const model::ModelConfig* teacher = nullptr;  // null: no teacher
  int stage = 0;              // 0 none, 1 optimizer, 2 gradients, 3 parameters
  int world_size = 1;
  int64_t micro_batch = 1, seq_len = 1;
  bool bf16 = true;           // compute dtype under autocast (teacher weights in bf16 too)
  bool gradient_checkpointing = false;
  bool hidden_state_losses = false;  // LAFD / MSE keep every layer's hidden state
  double baseline_bytes = 0;  // measured resident set before the models were loaded
  // Elements of the weights the step quantizes into fp32 copies (the injection report's rows, an
  // untied embedding looked up row by row left out): all of them, those outside the decoder layers,
  // and the largest layer's. Negative: every matrix.
  double quantized = -1, quantized_outer = -1, quantized_largest_layer = -1;
};

struct MemoryPart {
  std::string name;
  double bytes = 0;
};

struct MemoryPrediction {
  std::vector<MemoryPart> parts;
  double total() const;
  // "memory model (rank, stage gradients, 2 ranks): weights 1.19 GiB, ..., total 7.9 GiB"
  std::string describe(const std::string& stage_name) const;
};

MemoryPrediction predict_training_memory(const MemoryModelInput& input);

}  // namespace edgerazor::train
