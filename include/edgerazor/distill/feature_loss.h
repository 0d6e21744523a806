// Feature distillation (spec §4, §5): masked MSE on hidden states at fixed layers, LAFD
// (layer-adaptive choice of the k least-similar transitions), and the optional attention-map and
// KV-relation KL losses.
//
// Legend: B batch, T tokens, C hidden, L decoder layers, H heads, D head dim.
// Hidden-state lists have L+1 entries of (B, T, C): index 0 = embedding output, index i = output
// of decoder layer i, index L = after the final norm (Hugging Face convention). Student and
// teacher use the same index (identity layer mapping, equal C).
//
//   FeatureDistillLoss lafd(loss_preset("lafd"));          // top-3 cosine, batch_mean
//   LossOutput out = lafd(student_states, teacher_states, labels);
//   // parts: {"lafd", value}, {"lafd.layer_0", 2}, {"lafd.layer_1", 4}, {"lafd.layer_2", 1}
//   lafd->last_layers();                                    // {2, 4, 1}
//
// If no configured layer exists in the lists, the loss is skipped: total is undefined and a
// warning is logged (spec §4.2). The teacher is detached; LAFD's choice is not differentiable.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <ostream>
#include <utility>
#include <vector>

#include "edgerazor/distill/loss_output.h"
#include "edgerazor/distill/options.h"

namespace edgerazor::distill {

// Hidden-state MSE / LAFD (loss_type hidden_states, loss_function compute_mse).
class FeatureDistillLossImpl : public torch::nn::Cloneable<FeatureDistillLossImpl> {
 public:
  explicit FeatureDistillLossImpl(DistillLossOptions options);

  void reset() override {}
  void pretty_print(std::ostream& stream) const override;

  LossOutput forward(const std::vector<at::Tensor>& student_states /*L+1 x (B,T,C)*/,
                     const std::vector<at::Tensor>& teacher_states /*L+1 x (B,T,C)*/,
                     const at::Tensor& labels /*(B,T) or undefined*/);

  // Layers used by the last forward (LAFD: in rank order).
  const std::vector<int64_t>& last_layers() const { return last_layers_; }

  DistillLossOptions options;

 private:
  std::vector<int64_t> last_layers_;
};
TORCH_MODULE(FeatureDistillLoss);

// One layer's keys and values, each (B, H_kv, T, D).
using KeyValue = std::pair<at::Tensor, at::Tensor>;

// Attention-map KL (loss_type attentions, §5.1) and KV self-relation KL (past_key_values, §5.2),
// with forward / reverse / confidence KL on probability maps (no temperature). Teacher heads are
// averaged in groups to the student's count; a layer whose head counts do not divide is skipped.
class RelationDistillLossImpl : public torch::nn::Cloneable<RelationDistillLossImpl> {
 public:
  explicit RelationDistillLossImpl(DistillLossOptions options);

  void reset() override {}
  void pretty_print(std::ostream& stream) const override;

  // attentions: L x (B, H, T, T) post-softmax maps.
  LossOutput forward(const std::vector<at::Tensor>& student_attentions,
                     const std::vector<at::Tensor>& teacher_attentions, const at::Tensor& labels);
  // past_key_values: L x (K, V). (A separate name: the module holder needs a single forward.)
  LossOutput forward_key_values(const std::vector<KeyValue>& student_kv,
                                const std::vector<KeyValue>& teacher_kv, const at::Tensor& labels);

  const std::vector<int64_t>& last_layers() const { return last_layers_; }

  DistillLossOptions options;

 private:
  LossOutput reduce_layers(const std::vector<at::Tensor>& student_maps,
                           const std::vector<at::Tensor>& teacher_maps,
                           const std::vector<int64_t>& layers, const at::Tensor& labels);
  std::vector<int64_t> choose_layers(const std::vector<at::Tensor>& student_maps,
                                     const std::vector<at::Tensor>& teacher_maps);
  std::vector<int64_t> last_layers_;
};
TORCH_MODULE(RelationDistillLoss);

}  // namespace edgerazor::distill
