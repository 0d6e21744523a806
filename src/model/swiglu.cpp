#include "edgerazor/model/swiglu.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace edgerazor::model {
namespace {

class RecomputedSwiGlu : public torch::autograd::Function<RecomputedSwiGlu> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    ctx->save_for_backward({gate, up});
    return at::silu(gate) * up;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &gate = saved[0], &up = saved[1];
    const at::Tensor& grad = grads[0];
    // What autograd does for silu(gate) * up: MulBackward, then SiluBackward.
    const at::Tensor grad_up = grad * at::silu(gate);
    const at::Tensor grad_gate = at::silu_backward(grad * up, gate);
    return {grad_gate, grad_up};
  }
};

}  // namespace

at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up, bool recompute_in_backward) {
  if (recompute_in_backward) return RecomputedSwiGlu::apply(gate, up);
  return at::silu(gate) * up;
}

}  // namespace edgerazor::model
