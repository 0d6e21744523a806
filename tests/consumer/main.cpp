// A user's trainer linking the installed EdgeRazor package: inject a preset into a plain
// torch::nn model and run one STE step.
#include <edgerazor/config/quant_presets.h>
#include <edgerazor/quant/inject.h>
#include <edgerazor/quant/weight_quantizer.h>
#include <torch/torch.h>

#include <iostream>

int main() {
  torch::nn::Sequential model(torch::nn::Linear(256, 64), torch::nn::ReLU(), torch::nn::Linear(64, 8));
  auto config = edgerazor::config::preset("w4a8");
  config.function.w_block_size = 64;
  const auto report = edgerazor::quant::inject(*model, config);
  torch::optim::SGD optimizer(model->parameters(), 0.1);
  {
    edgerazor::quant::QuantizedWeightsScope quantized(*model);
    model->forward(torch::randn({4, 256})).sum().backward();
  }
  optimizer.step();
  std::cout << report.to_text() << "consumer ok\n";
  return report.rows.size() == 2 ? 0 : 1;
}
