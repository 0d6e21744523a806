// AdamW whose step() updates each parameter, its two moments and the weight decay in one pass over
// memory (CPU, fp32 or bf16, contiguous), instead of torch::optim::AdamW's ~8 ATen passes. It is a
// torch::optim::AdamW: same options, same per-parameter state (exp_avg, exp_avg_sq, step), same
// serialization, so checkpoints move freely between the two. Anything the fused loop does not
// cover (GPU tensors, amsgrad, sparse or non-contiguous tensors, other dtypes, moments whose dtype
// differs from their parameter's) goes through the base class's step. The state map is keyed the
// way the LibTorch it is built against keys it (the TensorImpl address; a string in 1.x).
//
// Maths, per element, in float (bf16 parameters and moments are rounded once when stored, where
// PyTorch's unfused step rounds after each op; fp32 matches it to float rounding):
//   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#pragma once

#include <torch/optim/adamw.h>

#include <vector>

namespace edgerazor::train {

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  at::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace edgerazor::train
