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
// Called with backward = false around the forward run, true around the recompute + gradients.
using CheckpointBracket = std::function<void(bool backward)>;

// Returns block(input); gradients reach input and every parameter in params that requires grad.
// before/after (optional) bracket every run of the block: the forward one, and in backward the
// recompute together with the gradient computation (sharded weights are gathered inside).
at::Tensor checkpoint(const CheckpointBlock& block, const at::Tensor& input,
                      const std::vector<at::Tensor>& params, CheckpointBracket before = nullptr,
                      CheckpointBracket after = nullptr);

}  // namespace edgerazor::model
