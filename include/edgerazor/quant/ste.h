// Straight-through estimator (spec quantization.md §3) for tensors inside the graph
// (activations, keys, values): the forward value is exactly fake_quantize(x), the backward
// passes the incoming gradient to x unchanged. Unlike the reference's x + (q - x).detach(), the
// forward value is bit-equal to the quantized grid (the reference differs in ~0.025 % of bf16
// values, §0.2).
//
// Weights do not go through this: QuantizedWeightsScope swaps parameter data instead, which
// gives the same identity gradient without building a graph node per weight.
#pragma once

#include <ATen/core/ATen_fwd.h>

#include "edgerazor/quant/functions.h"

namespace edgerazor::quant {

at::Tensor fake_quantize_ste(const at::Tensor& input, const QuantSpec& spec);

}  // namespace edgerazor::quant
