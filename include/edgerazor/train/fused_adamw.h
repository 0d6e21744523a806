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
// (g: the gradient, times scale_gradients_next_step's scale when one is set)
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

  // Creates the state of every parameter that requires a gradient and has none yet: step 0, zero
  // moments, exactly what the first step() would create (so the steps that follow are the same).
  // Called when training starts, after a checkpoint is loaded: the moments' memory (2x the
  // parameters) is taken before the first step, so a run that does not fit fails at once, and the
  // first steps' activations find their memory already laid out (at Qwen3-0.6B the first step
  // after lazily created moments took 23 s instead of 9 s, faulting in 1.8 GB of fresh heap).
  void allocate_state();

  // The next step() reads every gradient as grad * scale (then forgets the scale): gradient
  // clipping's coefficient folded into the update's one pass, instead of a read-and-write pass
  // over all gradients before it (Qwen3-0.6B: 1.2 GB of bf16 gradients). The fused loop applies
  // it in float (fp32: bit-equal to grad.mul_(scale) then step(); bf16: the scaled gradient is not
  // rounded to bf16 first); the base class's step gets the gradients multiplied in place first.
  // The .grad tensors themselves stay unscaled.
  void scale_gradients_next_step(double scale) { grad_scale_ = scale; }

 private:
  double grad_scale_ = 1.0;
};

}  // namespace edgerazor::train
