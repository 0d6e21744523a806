// Distillation maths as free tensor functions (spec distillation.md §3-§5). The loss modules and
// the fused chunked path are built on these; tests check them against the spec's §14 vectors.
//
// Legend: B batch, T tokens, V vocab, C hidden, L decoder layers, H heads, S = T keys.
// Labels are (B, T) int64, NOT shifted (labels[b,t] is token t itself, padding_id = ignore).
// All maths runs in fp32 (or fp64 when given fp64): bf16/fp16 inputs are upcast.
// Gradients flow to every floating input; callers detach the teacher (the modules do).
#pragma once

#include <ATen/core/ATen_fwd.h>

#include <cstdint>
#include <vector>

#include "edgerazor/distill/options.h"

namespace edgerazor::distill {

constexpr double kProbEps = 1e-8;        // probability clamp of every KL (spec §1)
constexpr double kMinTemperature = 0.1;  // T = max(T_config, 0.1) (spec §3.1)

// ---- masks and reductions ---------------------------------------------------------------------

// Positions that take part in a loss: (B, T) bool. same_token: labels[t] != padding_id;
// next_token: t+1 < T and labels[t+1] != padding_id. `standard` must be resolved by the caller
// (resolve_alignment) before calling.
at::Tensor position_mask(const at::Tensor& labels /*(B,T)*/, MaskAlignment alignment,
                         int64_t padding_id);
MaskAlignment resolve_alignment(MaskAlignment alignment, LossType type);

// Targets of a causal LM at each position: labels[t+1], padding_id at t = T-1. (B, T) int64.
at::Tensor next_token_targets(const at::Tensor& labels /*(B,T)*/, int64_t padding_id);

// Per-position weights w (B, T) such that reduce(x) = sum(w * x) for the KL reductions of §3.3:
// sum -> mask; mean -> mask / max(sum mask, 1); batch_mean -> mask / (B * max(valid_b, 1)).
// An undefined mask means "no labels": mean and batch_mean become the plain mean over B*T.
// `none` is not linear and is refused. dtype: `dtype` (fp32 or fp64).
at::Tensor reduction_weights(const at::Tensor& mask /*(B,T) bool or undefined*/, int64_t batch,
                             int64_t tokens, Reduction reduction, at::ScalarType dtype);

// Reduces per-position values (B, T) as in §3.3 (undefined mask = no labels). `none` returns the
// masked (B, T) tensor.
at::Tensor reduce_tokens(const at::Tensor& values /*(B,T)*/, const at::Tensor& mask,
                         Reduction reduction);

// ---- logit losses (§3) ------------------------------------------------------------------------

// KLcore: T^2 * sum_v q (log q - log p), p = clamp(softmax(input/T), 1e-8),
// q = clamp(softmax(target/T), 1e-8), not renormalised. (B, T) from (B, T, V) logits.
at::Tensor kl_per_token(const at::Tensor& input_logits, const at::Tensor& target_logits,
                        double temperature);

// T^2 KL(P_teacher || P_student) and T^2 KL(P_student || P_teacher), reduced (§3.2).
at::Tensor forward_kl(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                      const at::Tensor& mask, double temperature, Reduction reduction);
at::Tensor reverse_kl(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                      const at::Tensor& mask, double temperature, Reduction reduction);

// Teacher entropy H[b,t] = -sum_v P log(P + 1e-8), P = softmax(teacher) at T = 1 (B, T).
at::Tensor teacher_entropy(const at::Tensor& teacher_logits /*(B,T,V)*/);

// EAKLD gamma (§3.4): clamp(1 - batch_mean(H) / log k, 0, 1); a detached () scalar.
at::Tensor entropy_gamma(const at::Tensor& teacher_logits, const at::Tensor& mask,
                         int64_t confidence_k);
// CAKLD gamma: clamp(batch_mean(P_teacher[target]), 0, 1); 0.5 without labels (undefined mask).
// `targets` (B, T) int64 are the label ids the mask refers to (labels for same_token,
// next_token_targets for next_token).
at::Tensor confidence_gamma(const at::Tensor& teacher_logits, const at::Tensor& targets,
                            const at::Tensor& mask);

// gamma * reverse_kl + (1 - gamma) * forward_kl (EAKLD / CAKLD, §3.4). gamma is a () tensor.
at::Tensor confidence_kl(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                         const at::Tensor& mask, double temperature, Reduction reduction,
                         const at::Tensor& gamma);

// The student's task loss as Hugging Face computes it: fp32 CE of logits[t] against labels[t+1],
// mean over valid targets (0 when none; HF would give NaN).
at::Tensor causal_lm_cross_entropy(const at::Tensor& logits /*(B,T,V)*/,
                                   const at::Tensor& labels /*(B,T)*/, int64_t padding_id);

// ---- feature losses (§4) ----------------------------------------------------------------------

// Masked MSE (§4.1) of (B, T, C) or (B, H, T, D) features, same shape required. Mask (B, T) or
// undefined; reductions per §4.1, including the `mean` quirk (count clamped per sample).
at::Tensor masked_mse(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& mask,
                      Reduction reduction);

// Resolves fixed layer names against N = number of entries (§4.2): ints as is (negative -> N+i),
// low -> 1 (0 if N <= 1), mid -> N/2, high -> N-1. Out-of-range entries are dropped (the caller
// warns). Does not handle "adaptive".
std::vector<int64_t> resolve_fixed_layers(const std::vector<std::string>& layer_index, int64_t n);

// LAFD metric per transition i = 1..N-1 between X[i] and X[i-1] (§4.3): mean cosine over all
// (b, t) positions (unmasked), mean L2 norm, or mean unbiased variance across dim 0 (batch; the
// sequence when B == 1). Returns N-1 doubles (element i-1 is layer i).
std::vector<double> layer_transition_metrics(const std::vector<at::Tensor>& states, LayerMetric metric);

// LAFD layer choice: the top-k transitions (cosine ascending, l2/variance descending; ties go
// to the lower index), as indices in 1..N-1 in rank order.
std::vector<int64_t> select_adaptive_layers(const std::vector<at::Tensor>& states,
                                            LayerMetric metric, int64_t topk);

// ---- attention / KV relation losses (§5, optional extras) ---------------------------------------

// Averages teacher heads in consecutive groups to the student's head count (B, Ht, ...) ->
// (B, Hs, ...). Returns an undefined tensor when Ht is not a multiple of Hs (layer skipped).
at::Tensor group_teacher_heads(const at::Tensor& teacher /*(B,Ht,T,S)*/, int64_t student_heads);

// 4-D KLcore on probability maps (no softmax, no T): sum_keys q (log q - log p), p, q clamped at
// 1e-8. (B, H, T).
at::Tensor kl_per_row_4d(const at::Tensor& input_probs, const at::Tensor& target_probs);

// Reduces (B, H, T) rows with a (B, T) mask as §5.1: sum; mean = sum / sum_b valid_b (not x H);
// batch_mean = mean over (b, h) of sum_t / max(valid_b, 1). Undefined mask = plain mean.
at::Tensor reduce_rows_4d(const at::Tensor& values /*(B,H,T)*/, const at::Tensor& mask,
                          Reduction reduction);

// Relation map softmax(X X^T / sqrt(D)) of keys or values (B, H, T, D) -> (B, H, T, T) (§5.2).
at::Tensor self_relation(const at::Tensor& states /*(B,H,T,D)*/);

}  // namespace edgerazor::distill
