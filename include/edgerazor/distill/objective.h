// DistillObjective: the combined quantization-aware distillation loss (spec §6)
//
//   total = loss_task_alpha * CE(student) + sum_i alpha_i * loss_i(student, teacher)
//
// Legend: B batch, T tokens, C hidden, V vocab, L decoder layers, H heads, D head dim.
//
// What the trainer passes, per micro-batch (ModelOutputs for each model; labels (B, T) int64,
// unshifted, -100 = ignore):
//   logits          (B, T, V)      whole logits, or leave undefined and give
//   final_hidden    (B, T, C)      the lm_head input (after the final norm, after A8 fake quant)
//   lm_head_weight  (V, C)         the weight the lm_head uses (e.g. the quantized STE weight)
//                                  -> CE and every logit loss are computed chunk by chunk from the
//                                  same logits chunk, recomputed in backward (peak O(chunk * V))
//   hidden_states   L+1 x (B,T,C)  index 0 = embeddings, index L = after the final norm; needed by
//                                  hidden_states losses (MSE, LAFD)
//   attentions      L x (B,H,T,T)  post-softmax maps, for attentions losses (optional)
//   key_values      L x (K, V)     each (B, H_kv, T, D), for past_key_values losses (optional)
//   task_loss       ()             optional: a CE the caller already computed; then the objective
//                                  uses it instead of computing CE itself
//
//   DistillObjectiveOptions o;                      // paper Qwen3 sub-4-bit setting
//   o.loss_task_alpha = 0.1;
//   auto kd = loss_preset("eakld"); kd.alpha = 2.0; kd.temperature = 1.0; kd.confidence_k = 16;
//   auto fd = loss_preset("lafd");  fd.alpha = 0.1;
//   o.losses = {kd, fd};
//   DistillObjective objective(o);
//   ModelOutputs s, t;  ... fill from the student (with grad) and the teacher (under NoGradGuard)
//   LossOutput out = objective(s, t, labels);
//   out.total.backward();
//   // out.parts: task_ce, eakld, eakld.gamma, lafd, lafd.layer_0..2, distill (all detached)
//
// Teacher tensors are detached on entry, so the teacher never gets a gradient even if the caller
// forgot NoGradGuard. Parts are unweighted per-loss values; "distill" is the weighted sum of the
// distillation losses (without the CE). A loss whose inputs are missing (no hidden states, no
// usable layer) raises an error, except the §4.2 "no valid layer" case, which is skipped with a
// warning as in the reference.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/distill/feature_loss.h"
#include "edgerazor/distill/fused_logit_loss.h"
#include "edgerazor/distill/loss_output.h"
#include "edgerazor/distill/options.h"

namespace edgerazor::distill {

struct ModelOutputs {
  at::Tensor logits;                       // (B, T, V) or undefined
  at::Tensor final_hidden;                 // (B, T, C) lm_head input
  at::Tensor lm_head_weight;               // (V, C)
  std::vector<at::Tensor> hidden_states;   // L+1 x (B, T, C)
  std::vector<at::Tensor> attentions;      // L x (B, H, T, T)
  std::vector<KeyValue> key_values;        // L x ((B, H_kv, T, D), (B, H_kv, T, D))
  at::Tensor task_loss;                    // () optional precomputed CE (student only)

  // Logits as a LogitsSource: final_hidden + lm_head_weight when both are set (final_hidden
  // defaults to hidden_states.back()), else logits.
  LogitsSource logits_source() const;
};

class DistillObjectiveImpl : public torch::nn::Cloneable<DistillObjectiveImpl> {
 public:
  // Validates every loss (throws ConfigError naming "<loss name>.<key>").
  explicit DistillObjectiveImpl(DistillObjectiveOptions options);

  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  LossOutput forward(const ModelOutputs& student, const ModelOutputs& teacher,
                     const at::Tensor& labels /*(B,T) int64*/);

  // Layers chosen by each hidden-state / relation loss in the last forward (LAFD: rank order).
  std::vector<std::pair<std::string, std::vector<int64_t>>> last_layer_choices() const;

  DistillObjectiveOptions options;

 private:
  std::vector<size_t> logit_losses_;                        // indices into options.losses
  std::vector<std::pair<size_t, FeatureDistillLoss>> feature_losses_;
  std::vector<std::pair<size_t, RelationDistillLoss>> relation_losses_;
};

TORCH_MODULE(DistillObjective);

}  // namespace edgerazor::distill
