// silu(gate) * up, the Llama/Qwen MLP activation. With recompute_in_backward, an autograd function
// that saves gate and up only and recomputes silu(gate) in backward with autograd's own ops
// (bit-identical gradients); plain autograd also keeps silu(gate), one more (B, T, F) tensor per
// layer until backward (6 MiB per layer at B 4, T 256, F 1536 in fp32).
#pragma once

#include <ATen/core/Tensor.h>

namespace edgerazor::model {

at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up, bool recompute_in_backward);

}  // namespace edgerazor::model
