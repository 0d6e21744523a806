// TinyNet and its deterministic data, shared by the data-parallel worker and the 1-process
// reference in dist_test.cpp: 8 rows x 8 features -> Linear(8,16) -> tanh -> Linear(16,4),
// MSE loss, plain SGD. Row i of the global batch goes to rank i % 2 (the DataLoader's
// interleaved rank sharding).
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace edgerazor::distributed::testing {

struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl()
      : fc1(register_module("fc1", torch::nn::Linear(8, 16))),
        fc2(register_module("fc2", torch::nn::Linear(16, 4))),
        unused(register_parameter("unused", at::zeros({3}))) {}
  at::Tensor forward(const at::Tensor& x) { return fc2(at::tanh(fc1(x))); }
  torch::nn::Linear fc1, fc2;
  at::Tensor unused;  // never in the graph: its grad must stay undefined after synchronize()
};
TORCH_MODULE(TinyNet);

inline TinyNet make_tiny_net(uint64_t seed) {
  at::manual_seed(seed);
  return TinyNet();
}

inline at::Tensor tiny_inputs() { return at::sin(at::arange(64, at::kFloat) * 0.37).reshape({8, 8}); }
inline at::Tensor tiny_targets() { return at::cos(at::arange(32, at::kFloat) * 0.11).reshape({8, 4}); }

constexpr int kTinySteps = 6;
constexpr double kTinyLr = 0.2;

// One optimizer step per entry of `steps`: each micro-batch (row list) contributes
// mse(rows) / micro_batches.size(); hooks run around each backward; then SGD.
inline void train_tiny(TinyNet& net, const std::vector<std::vector<int64_t>>& micro_batches, int steps,
                       const std::function<void(size_t micro)>& before_backward,
                       const std::function<void()>& after_backward) {
  const auto x = tiny_inputs(), y = tiny_targets();
  for (int step = 0; step < steps; ++step) {
    for (auto& p : net->parameters()) p.mutable_grad() = at::Tensor();  // zero_grad(set_to_none)
    for (size_t m = 0; m < micro_batches.size(); ++m) {
      const auto rows = at::tensor(micro_batches[m], at::kLong);
      const auto pred = net->forward(x.index_select(0, rows));
      const auto loss = (pred - y.index_select(0, rows)).pow(2).mean() / static_cast<double>(micro_batches.size());
      before_backward(m);
      loss.backward();
    }
    after_backward();
    at::NoGradGuard no_grad;
    for (auto& p : net->parameters())
      if (p.grad().defined()) p.sub_(p.grad() * kTinyLr);
  }
}

inline at::Tensor flat_parameters(TinyNet& net) {
  std::vector<at::Tensor> parts;
  for (auto& p : net->parameters()) parts.push_back(p.detach().reshape({-1}));
  return at::cat(parts);
}

}  // namespace edgerazor::distributed::testing
