// GradReadyHooks: a callback after each parameter's gradient is accumulated (a post-hook on its
// AccumulateGrad node), for the bucketed all-reduce's overlap (grad_sync.cpp) and ZeRO's
// reduce-scatter in backward (zero.cpp). Private to src/distributed.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace edgerazor::distributed {

class GradReadyHooks {
 public:
  GradReadyHooks() = default;
  GradReadyHooks(const GradReadyHooks&) = delete;
  GradReadyHooks& operator=(const GradReadyHooks&) = delete;
  ~GradReadyHooks() { remove(); }

  // on_ready(i) runs (on the autograd thread) each time params[i]'s .grad has been accumulated.
  // `who` names the caller in the error for a parameter that is not a leaf requiring grad.
  void install(const std::vector<at::Tensor>& params, std::function<void(size_t)> on_ready, const char* who) {
    callback_ = std::move(on_ready);
    for (size_t i = 0; i < params.size(); ++i) {
      auto acc = torch::autograd::impl::grad_accumulator(params[i]);
      TORCH_CHECK(acc, who, ": parameter ", i, " is not a leaf that requires grad");
      keys_.push_back(acc->add_post_hook(std::make_unique<Hook>(&callback_, i)));
      accumulators_.push_back(std::move(acc));  // keeps the accumulator (and the hook) alive
    }
  }
  void remove() {
    for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(keys_[i]);
    accumulators_.clear();
    keys_.clear();
  }
  bool installed() const { return !accumulators_.empty(); }

 private:
  struct Hook : torch::autograd::FunctionPostHook {
    Hook(const std::function<void(size_t)>* callback, size_t param) : callback_(callback), param_(param) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list& /*inputs*/) override {
      (*callback_)(param_);
      return outputs;
    }
    const std::function<void(size_t)>* callback_;
    size_t param_;
  };
  std::function<void(size_t)> callback_;
  // shared_ptr<Node> up to some 2.x release, intrusive_ptr<Node> in newer ones: whatever it returns.
  std::vector<decltype(torch::autograd::impl::grad_accumulator(std::declval<at::Tensor>()))> accumulators_;
  std::vector<uintptr_t> keys_;
};

}  // namespace edgerazor::distributed
