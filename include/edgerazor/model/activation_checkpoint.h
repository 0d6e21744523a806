// Activation (gradient) checkpointing for C++: run a block without keeping its activations and
// recompute it during backward. LibTorch has no torch.utils.checkpoint, so this is a custom
// autograd function whose backward re-runs the block with grad enabled and differentiates it
// with respect to the block input and the given parameters.
//
// The block must be a pure function of its input and the parameters' current values (no RNG);
// A8/KV8 hooks are, so fake quantization is applied again during recomputation.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace edgerazor::model {

using CheckpointBlock = std::function<at::Tensor(const at::Tensor& input)>;

// Returns block(input); gradients reach input and every parameter in params that requires grad.
at::Tensor checkpoint(const CheckpointBlock& block, const at::Tensor& input,
                      const std::vector<at::Tensor>& params);

}  // namespace edgerazor::model
