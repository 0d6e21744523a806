// Sum of a tensor's squares in fp64, as the gradient norms (train::clip_gradients' norm-only path,
// ZeroOptimizer::clip_gradients) need it, without an fp64 copy of a CPU fp32 tensor: the embedding's
// gradient alone would take two 1.2 GB temporaries at Qwen3-0.6B (to(kDouble), then pow(2)).
#pragma once

#include <ATen/core/Tensor.h>

namespace edgerazor::train {

// CPU fp32 contiguous: fixed 64K-element chunks summed in parallel, their partial sums added in
// index order, so the result does not depend on the thread count. Anything else (another dtype or
// device, strided): t.to(kDouble).pow(2).sum(), read back with item().
double sum_of_squares_f64(const at::Tensor& t);

}  // namespace edgerazor::train
