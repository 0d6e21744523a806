#include "edgerazor/quant/ste.h"

#include <torch/autograd.h>

namespace edgerazor::quant {
namespace {

struct FakeQuantizeSte : public torch::autograd::Function<FakeQuantizeSte> {
  static at::Tensor forward(torch::autograd::AutogradContext* /*ctx*/, const at::Tensor& input,
                            const QuantSpec* spec) {
    return fake_quantize(input, *spec);  // runs without recording (custom Function forward)
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* /*ctx*/,
                                                 torch::autograd::variable_list grad_outputs) {
    return {grad_outputs[0], at::Tensor()};
  }
};

}  // namespace

at::Tensor fake_quantize_ste(const at::Tensor& input, const QuantSpec& spec) {
  if (!input.requires_grad()) return fake_quantize(input, spec);
  return FakeQuantizeSte::apply(input, &spec);
}

}  // namespace edgerazor::quant
