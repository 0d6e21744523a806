#include "edgerazor/train/fused_adamw.h"

#include "edgerazor/train/adamw_kernel.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "../runtime/openmp_required.h"
#include <c10/util/BFloat16.h>
#include <torch/version.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>

namespace edgerazor::train {
namespace {

// What the one-pass loop covers: CPU, fp32 or bf16, dense and contiguous gradient, and moments
// (when they exist already) in the parameter's dtype and layout. State made elsewhere, e.g. fp32
// moments loaded for a now-bf16 parameter, takes the base class's step.
bool fusable(const at::Tensor& p, const at::Tensor& g, const torch::optim::AdamWParamState* state) {
  const auto dt = p.scalar_type();
  if (!(p.device().is_cpu() && !g.is_sparse() && (dt == at::kFloat || dt == at::kBFloat16) &&
        g.scalar_type() == dt && p.is_contiguous() && g.is_contiguous() && g.sizes() == p.sizes()))
    return false;
  if (state == nullptr) return true;
  for (const at::Tensor* m : {&state->exp_avg(), &state->exp_avg_sq()})
    if (!m->defined() || !m->is_contiguous() || m->scalar_type() != dt || m->sizes() != p.sizes()) return false;
  return true;
}

// The key torch::optim::Optimizer files a parameter's state under: the TensorImpl address, as a
// string in older LibTorch (1.x), as the pointer itself in 2.x. Whatever the map's key type is.
template <typename Key>
Key state_key_as(const at::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

// What torch::optim::AdamW creates on a parameter's first step.
std::unique_ptr<torch::optim::AdamWParamState> initial_state(const at::Tensor& p) {
  auto state = std::make_unique<torch::optim::AdamWParamState>();
  state->step(0);
  state->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
  state->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
  return state;
}

}  // namespace

void FusedAdamW::allocate_state() {
  using Key = typename std::decay_t<decltype(state_)>::key_type;
  at::NoGradGuard no_grad;
  for (auto& group : param_groups_)
    for (auto& p : group.params()) {
      if (!p.requires_grad()) continue;
      const Key key = state_key_as<Key>(p);
      if (state_.find(key) == state_.end()) state_.emplace(key, initial_state(p));
    }
}

at::Tensor FusedAdamW::step(LossClosure closure) {
  using Key = typename std::decay_t<decltype(state_)>::key_type;
  const auto state_key = [](const at::Tensor& p) { return state_key_as<Key>(p); };
  at::NoGradGuard no_grad;
  at::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  bool all_fusable = true;
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto it = state_.find(state_key(p));
      const auto* state =
          it == state_.end() ? nullptr : static_cast<const torch::optim::AdamWParamState*>(it->second.get());
      if (options.amsgrad() || !fusable(p, p.grad(), state)) all_fusable = false;
    }
  }
  const double grad_scale = grad_scale_;
  grad_scale_ = 1.0;  // for this step only
  if (!all_fusable) {
    if (grad_scale != 1.0)
      for (auto& group : param_groups_)
        for (auto& p : group.params())
          if (p.grad().defined()) p.mutable_grad().mul_(grad_scale);
    torch::optim::AdamW::step(nullptr);
    return loss;
  }

  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const at::Tensor& grad = p.grad();
      const Key key = state_key(p);
      auto it = state_.find(key);
      if (it == state_.end()) it = state_.emplace(key, initial_state(p)).first;
      auto& state = static_cast<torch::optim::AdamWParamState&>(*it->second);
      at::Tensor& exp_avg = state.exp_avg();
      at::Tensor& exp_avg_sq = state.exp_avg_sq();
      state.step(state.step() + 1);
      const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
      const double bc1 = 1 - std::pow(beta1, state.step()), bc2 = 1 - std::pow(beta2, state.step());
      const AdamWCoefficients c{static_cast<float>(1 - options.lr() * options.weight_decay()),
                           static_cast<float>(beta1),
                           static_cast<float>(1 - beta1),
                           static_cast<float>(beta2),
                           static_cast<float>(1 - beta2),
                           static_cast<float>(std::sqrt(bc2)),
                           static_cast<float>(options.eps()),
                           static_cast<float>(-options.lr() / bc1),
                           static_cast<float>(grad_scale)};
      const int64_t n = p.numel();
      if (p.scalar_type() == at::kFloat) {
        float *pp = p.data_ptr<float>(), *m = exp_avg.data_ptr<float>(), *v = exp_avg_sq.data_ptr<float>();
        const float* g = grad.data_ptr<float>();
        at::parallel_for(0, n, 1 << 14, [&](int64_t b, int64_t e) { adamw_update_f32(pp + b, g + b, m + b, v + b, e - b, c); });
      } else {
        const auto u16 = [](const at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<c10::BFloat16>()); };
        uint16_t *pp = u16(p), *m = u16(exp_avg), *v = u16(exp_avg_sq);
        const uint16_t* g = u16(grad);
        at::parallel_for(0, n, 1 << 14, [&](int64_t b, int64_t e) { adamw_update_bf16(pp + b, g + b, m + b, v + b, e - b, c); });
      }
    }
  }
  return loss;
}

}  // namespace edgerazor::train
