// Implements: predict_training_memory (see edgerazor/train/memory_model.h).
#include "edgerazor/train/memory_model.h"

#include <algorithm>
#include <cstdio>

namespace edgerazor::train {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct Counts {
  double all = 0, matrices = 0, outer = 0, outer_matrices = 0, largest_layer = 0;
};

// Trainable elements by where ZeRO puts them: decoder layers (one unit each) and the rest.
Counts count(const model::ModelConfig& c) {
  Counts n;
  std::vector<double> layers(static_cast<size_t>(std::max<int64_t>(c.num_hidden_layers, 0)), 0.0);
  for (const auto& p : model::checkpoint_shapes(c)) {
    double e = 1;
    for (int64_t s : p.shape) e *= static_cast<double>(s);
    const bool matrix = p.shape.size() == 2;
    n.all += e;
    if (matrix) n.matrices += e;
    if (const int64_t layer = model::decoder_layer_of(p.name); layer >= 0) {
      layers[static_cast<size_t>(layer)] += e;
    } else {
      n.outer += e;
      if (matrix) n.outer_matrices += e;
    }
  }
  for (double l : layers) n.largest_layer = std::max(n.largest_layer, l);
  return n;
}

}  // namespace

double MemoryPrediction::total() const {
  double t = 0;
  for (const auto& p : parts) t += p.bytes;
  return t;
}

std::string MemoryPrediction::describe(const std::string& stage_name) const {
  std::string s = "memory model per rank (sharding " + stage_name + "):";
  char buf[96];
  for (const auto& p : parts) {
    std::string name = p.name;
    std::replace(name.begin(), name.end(), '_', ' ');
    std::snprintf(buf, sizeof(buf), " %s %.2f GiB,", name.c_str(), p.bytes / kGiB);
    s += buf;
  }
  std::snprintf(buf, sizeof(buf), " total %.2f GiB", total() / kGiB);
  return s + buf;
}

MemoryPrediction predict_training_memory(const MemoryModelInput& in) {
  const model::ModelConfig& c = in.student;
  const Counts n = count(c);
  const double W = std::max(in.world_size, 1);
  const int stage = std::clamp(in.stage, 0, 3);
  const double a = in.bf16 ? 2.0 : 4.0;  // compute dtype bytes
  const double tokens = static_cast<double>(in.micro_batch * in.seq_len);
  const double L = static_cast<double>(c.num_hidden_layers), C = static_cast<double>(c.hidden_size);
  const double F = static_cast<double>(c.intermediate_size), V = static_cast<double>(c.vocab_size);
  const double HD = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double KD = static_cast<double>(c.num_key_value_heads * c.head_dim);
  // A gathered layer (stage 3) is present twice at most: the one computing and the prefetched one.
  const double gathered_layers = 2 * n.largest_layer;

  MemoryPrediction m;
  const auto add = [&](const char* name, double bytes) { m.parts.push_back({name, bytes}); };
  add("process_baseline", in.baseline_bytes);
  // Latent fp32 weights (the master copy: stage 3 keeps only the shard resident).
  add("weights", stage < 3 ? 4 * n.all : 4 * (n.all / W + n.outer + gathered_layers));
  // The step's quantized fp32 copies (QuantizedWeightsScope).
  const double q_all = in.quantized >= 0 ? in.quantized : n.matrices;
  const double q_outer = in.quantized_outer >= 0 ? in.quantized_outer : n.outer_matrices;
  const double q_layer = in.quantized_largest_layer >= 0 ? in.quantized_largest_layer : n.largest_layer;
  add("quantized_copies", stage < 3 ? 4 * q_all : 4 * (q_outer + 2 * q_layer));
  // Full gradients at the end of backward (stage 0-1) or the outer unit's plus this rank's shard.
  // Stage 1 also holds the reduce-scatter's result for the largest unit while it adds it.
  const double largest_unit = std::max(n.outer, n.largest_layer);
  const double grads = stage == 0   ? 4 * n.all
                       : stage == 1 ? 4 * n.all + 4 * n.all / W + (W > 1 ? 4 * largest_unit / W : 0)
                                    : 4 * (n.outer + n.largest_layer) + 4 * n.all / W;
  add("gradients", grads);
  add("adamw_moments", stage == 0 ? 8 * n.all : 8 * n.all / W);
  if (in.teacher) add("teacher", count(*in.teacher).all * a);

  // Activations held at the end of forward, per token and layer: the fp32 residual inputs of the
  // two norms, the compute-dtype copies the Linears and attention save (A8 inputs, q, k, v, the
  // attention output, the MLP's gate, up and product).
  const double per_layer = 8 * C + a * (2 * C + 4 * HD + 6 * KD + 6 * F);
  const double layers_held = in.gradient_checkpointing || stage == 3 ? 4 * C * L + per_layer : per_layer * L;
  double hidden = in.hidden_state_losses && in.teacher ? a * C * (L + 1) : 0;
  add("activations", tokens * (layers_held + hidden));
  // Loss: the teacher's logits kept from the EAKLD pre-pass, one chunk of student logits and the
  // fp32 softmax/gradient pair of the row-fused loss.
  add("loss_buffers", tokens * V * (2 * a + 8));
  return m;
}

}  // namespace edgerazor::train
