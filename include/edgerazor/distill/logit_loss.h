// LogitDistillLoss: forward KL, reverse KL, EAKLD and CAKLD as one torch::nn module (spec §3).
//
// Legend: B batch, T tokens, C hidden, V vocab.
//
//   auto o = loss_preset("eakld");            // compute_kld_confidence + use_entropy
//   o.temperature = 1.0; o.confidence_k = 16;
//   LogitDistillLoss eakld(o);
//   LossOutput out = eakld(student_logits /*(B,T,V)*/, teacher_logits /*(B,T,V)*/, labels /*(B,T)*/);
//   // or, memory-efficient on a large vocabulary, from lm_head inputs:
//   out = eakld(LogitsSource::from_hidden(h_s /*(B,T,C)*/, w_s /*(V,C)*/),
//               LogitsSource::from_hidden(h_t, w_t), labels);
//   out.total.backward();       // parts: {"eakld", value}, {"eakld.gamma", gamma}
//
// options.chunk_size > 0 runs the fused chunked path (fused_logit_loss.h); 0 runs plain autograd
// on whole logits (the reference implementation, also used by the tests). Labels may be
// undefined (no mask: plain means, CAKLD gamma = 0.5). The teacher is detached.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/distill/fused_logit_loss.h"
#include "edgerazor/distill/loss_output.h"
#include "edgerazor/distill/options.h"

namespace edgerazor::distill {

// ---- building blocks shared with DistillObjective ---------------------------------------------

// The fused term of one logit loss: reduction weights and gamma statistic from the labels
// (mask alignment resolved for logits). labels (B, T) or undefined.
FusedKLTerm make_logit_term(const DistillLossOptions& options, const at::Tensor& labels,
                            int64_t batch, int64_t tokens, const at::TensorOptions& float_options);

// Loss value from a term's fused outputs; appends "<name>.gamma" for EAKLD / CAKLD to `parts`.
at::Tensor finish_logit_term(const DistillLossOptions& options, const at::Tensor& forward,
                             const at::Tensor& reverse, const at::Tensor& gamma_stat,
                             bool has_labels,
                             std::vector<std::pair<std::string, at::Tensor>>& parts);

// The gamma finish_logit_term applies, as a double from the detached statistic: EAKLD
// clamp(1 - stat / log k, 0, 1), CAKLD clamp(stat, 0, 1) (0.5 without labels); forward KL 0 and
// reverse KL 1, so that loss = gamma * reverse + (1 - gamma) * forward holds for every logit loss.
double logit_term_gamma(const DistillLossOptions& options, double gamma_stat, bool has_labels);

// The same loss by plain autograd on whole logits (B, T, V); `gamma` receives gamma for
// EAKLD / CAKLD (undefined otherwise) when not null.
at::Tensor logit_loss_unfused(const DistillLossOptions& options, const at::Tensor& student_logits,
                              const at::Tensor& teacher_logits, const at::Tensor& labels,
                              at::Tensor* gamma = nullptr);

// ---- module -----------------------------------------------------------------------------------

class LogitDistillLossImpl : public torch::nn::Cloneable<LogitDistillLossImpl> {
 public:
  explicit LogitDistillLossImpl(DistillLossOptions options);

  void reset() override {}
  void pretty_print(std::ostream& stream) const override;

  // One forward (so the module holder's operator() works); (B, T, V) tensors convert to
  // LogitsSource implicitly.
  LossOutput forward(const LogitsSource& student, const LogitsSource& teacher,
                     const at::Tensor& labels);

  DistillLossOptions options;
};

TORCH_MODULE(LogitDistillLoss);

}  // namespace edgerazor::distill
