// Activation checkpointing as a custom autograd function (see the header).
#include "edgerazor/model/activation_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>

namespace edgerazor::model {
namespace {

// Carries the block and its parameters to backward through ctx->saved_data (an IValue capsule).
struct BlockHolder : torch::CustomClassHolder {
  BlockHolder(CheckpointBlock b, std::vector<at::Tensor> p) : block(std::move(b)), params(std::move(p)) {}
  CheckpointBlock block;
  std::vector<at::Tensor> params;
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // params are passed as a TensorList so autograd connects the output to them.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                            at::TensorList /*params*/, c10::intrusive_ptr<BlockHolder> holder) {
    ctx->saved_data["block"] = c10::IValue::make_capsule(holder);
    ctx->save_for_backward({input});
    return holder->block(input);  // autograd is off here: no activations are kept
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    const at::Tensor input = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    at::Tensor output;
    {
      at::AutoGradMode enable(true);
      output = holder->block(input);
    }
    std::vector<at::Tensor> wrt{input};
    wrt.insert(wrt.end(), holder->params.begin(), holder->params.end());
    torch::autograd::variable_list out = torch::autograd::grad(
        {output}, wrt, {grad_outputs[0]}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    out.emplace_back();  // no gradient for the holder
    return out;
  }
};

}  // namespace

at::Tensor checkpoint(const CheckpointBlock& block, const at::Tensor& input, const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> trainable;
  for (const auto& p : params)
    if (p.requires_grad()) trainable.push_back(p);
  if (!at::GradMode::is_enabled() || (trainable.empty() && !input.requires_grad())) return block(input);
  auto holder = c10::make_intrusive<BlockHolder>(block, trainable);
  return CheckpointFunction::apply(input, at::TensorList(trainable), holder);
}

}  // namespace edgerazor::model
