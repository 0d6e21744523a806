// Fused, chunked logit losses: task CE and any number of KL terms (forward / reverse KL, EAKLD
// and CAKLD statistics) computed from the same chunk of logits, with the chunk's logits
// recomputed in backward. Peak extra memory is O(chunk_size * V) whatever B * T is, so a
// 151936-token vocabulary (Qwen3) never materialises a (B, T, V) fp32 tensor.
//
// Legend: B batch, T tokens, C hidden, V vocab, N = B * T rows, K terms.
//
// Each side (student, teacher) is a LogitsSource: either whole logits (B, T, V), or the lm_head
// input (B, T, C) plus the lm_head weight (V, C), in which case logits are produced chunk by chunk
// (z = hidden . weight^T in the inputs' dtype, then upcast to fp32). Gradients flow to the student
// hidden state and weight (or the student logits); pass the weight exactly as the student's
// forward uses it (e.g. the fake-quantized STE weight) so the gradient continues to the latent
// weight. The teacher side is detached and never gets a gradient.
//
// Usage (what DistillObjective does):
//   FusedLogitRequest req;
//   req.chunk_size = 256;
//   req.ce_targets = next_token_targets(labels, -100);            // (B, T), -100 = ignored
//   req.ce_weights = reduction_weights(valid, B, T, Reduction::mean, at::kFloat);
//   req.terms.push_back({/*temperature=*/1.0, kl_weights, /*forward=*/true, /*reverse=*/true,
//                        FusedGammaStat::entropy, gamma_weights, {}});
//   auto r = fused_logit_losses(LogitsSource::from_hidden(h_s, w_s),
//                               LogitsSource::from_hidden(h_t, w_t), req);
//   gamma = clamp(1 - r.gamma_stat[0] / log(k), 0, 1);   // detached
//   loss  = alpha_ce * r.ce + gamma * r.reverse[0] + (1 - gamma) * r.forward[0];
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace edgerazor::distill {

struct LogitsSource {
  at::Tensor logits;   // (B, T, V), or undefined when hidden + weight are given
  at::Tensor hidden;   // (B, T, C) lm_head input (final-normed, possibly A8-quantized)
  at::Tensor weight;   // (V, C) lm_head weight as used in the forward pass

  LogitsSource() = default;
  // Implicit on purpose: a loss taking LogitsSource also takes plain (B, T, V) logits.
  LogitsSource(at::Tensor logits_) : logits(std::move(logits_)) {}  // NOLINT(runtime/explicit)
  static LogitsSource from_logits(at::Tensor logits);
  static LogitsSource from_hidden(at::Tensor hidden, at::Tensor weight);
  bool has_logits() const { return logits.defined(); }
  bool defined() const { return logits.defined() || (hidden.defined() && weight.defined()); }
  int64_t batch() const;
  int64_t tokens() const;
  int64_t vocab() const;
  // Whole logits (B, T, V): the given ones, or hidden . weight^T (materialised; for the naive path).
  at::Tensor materialize() const;
};

// Per-call statistic a term needs for its gamma (spec §3.4), accumulated over chunks from the
// teacher at T = 1: sum(gamma_weights * H) (EAKLD) or sum(gamma_weights * P[gamma_targets])
// (CAKLD). Non-differentiable.
enum class FusedGammaStat { none, entropy, target_prob };

struct FusedKLTerm {
  double temperature = 1.0;        // values < 0.1 act as 0.1
  at::Tensor weights;              // (B, T) reduction weights of the KL (reduction_weights())
  bool forward = false;            // compute T^2 KL(teacher || student)
  bool reverse = false;            // compute T^2 KL(student || teacher)
  FusedGammaStat gamma_stat = FusedGammaStat::none;
  at::Tensor gamma_weights;        // (B, T), for gamma_stat != none
  at::Tensor gamma_targets;        // (B, T) int64, for target_prob; ignored rows have weight 0
};

struct FusedLogitRequest {
  int64_t chunk_size = 256;        // rows (tokens) per chunk; <= 0 means all rows at once
  at::Tensor ce_targets;           // (B, T) int64 target ids; undefined = no CE
  at::Tensor ce_weights;           // (B, T) weights (0 where the target is ignored)
  std::vector<FusedKLTerm> terms;
};

struct FusedLogitResult {
  at::Tensor ce;                           // () sum(ce_weights * nll); zero if no CE requested
  std::vector<at::Tensor> forward;         // per term, () weighted forward KL (zero if not asked)
  std::vector<at::Tensor> reverse;         // per term, () weighted reverse KL (zero if not asked)
  std::vector<at::Tensor> gamma_stat;      // per term, () detached statistic (zero if none)
};

// One pass over the rows in chunks; differentiable w.r.t. the student source (custom autograd
// function with recomputation: nothing of size N * V is saved for backward).
FusedLogitResult fused_logit_losses(const LogitsSource& student, const LogitsSource& teacher,
                                    const FusedLogitRequest& request);

}  // namespace edgerazor::distill
