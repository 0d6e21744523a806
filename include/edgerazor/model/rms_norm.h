// RMSNorm as Hugging Face computes it: y = weight * (x32 / sqrt(mean(x32^2) + eps)).to(x.dtype),
// x32 = x in fp32. When autograd records it on CPU fp32/bf16 contiguous input (weight of the same
// dtype), the forward runs the same ATen ops (bit-identical output) inside an autograd function that
// keeps only x and the fp32 1/rms per row, and the backward is one fused pass per row (the input's
// gradient, the weight's accumulated per thread in fp32) instead of autograd's ~12 ops, which also
// keep an fp32 copy of x and the normalised bf16 tensor per norm until backward (Qwen3-0.6B: four
// norms a layer, ~14 MiB a layer at T 512). The gradients agree with autograd's to fp32 rounding
// (bf16: to bf16 rounding of the result). Anything else takes the plain ops.
#pragma once

#include <ATen/core/Tensor.h>

namespace edgerazor::model {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace edgerazor::model
