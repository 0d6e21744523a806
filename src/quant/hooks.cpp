// TEMPORARY stub so dependants link; replaced by the real implementation.
#include "edgerazor/quant/hooks.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace edgerazor::quant {
at::Tensor quantize_input(const torch::nn::Module&, const at::Tensor& input) { return input; }
at::Tensor quantize_kv(const torch::nn::Module&, const at::Tensor& kv) { return kv; }
bool has_kv_quantizer(const torch::nn::Module&) { return false; }
}  // namespace edgerazor::quant
