// The element passes of blocked causal attention (attention_core.cpp), fused: one kernel from a
// query block's raw scores to its probabilities, one from the probabilities' gradient to the
// scores' gradient, where ATen's composition takes 5-6 passes over the (B, H, n, L) block each
// (scale, cast, mask, softmax, cast back). Private to the library.
#pragma once

#include <ATen/core/Tensor.h>

namespace edgerazor::model {

// True when the fused kernels take these scores: contiguous CPU fp32 or bf16 (B, H, n, L).
bool causal_softmax_fused(const at::Tensor& scores);

// Scores q k^T of queries [i0, i0 + n) against keys [0, L) -> softmax(scores * scale) in fp32 per
// row over the keys the query sees (key j <= i0 + row; the rest get probability 0), written into
// `scores` itself (its dtype) and returned. With `probs32` the fp32 probabilities are returned there
// too (a new tensor; `scores` itself when it is fp32).
at::Tensor causal_block_softmax_(at::Tensor& scores, int64_t i0, double scale, at::Tensor* probs32);

// Softmax backward of that block: grad_scores = scale * p * (g - sum_j p_j g_j) per row, from the
// probabilities' gradient g (dtype of the scores) and the fp32 probabilities; written into `grad`
// and returned.
at::Tensor causal_block_softmax_backward_(at::Tensor& grad, const at::Tensor& probs32, double scale);

}  // namespace edgerazor::model
