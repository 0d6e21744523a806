// Activation checkpointing as a custom autograd function (see the header).
#include "edgerazor/model/activation_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>
#include <ATen/core/ivalue.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>

namespace edgerazor::model {
namespace {

// libtorch 2.4 replaced the per-device autocast setters by device-type arguments.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define ER_AUTOCAST_DEVICE_API 1
#endif

// Autocast is thread-local and backward runs on the autograd engine's thread, so the recompute
// must re-enter the mixed-precision mode the forward ran in (else bf16 forward, fp32 recompute).
struct AutocastState {
  bool cpu = false, gpu = false;
  at::ScalarType cpu_dtype = at::kBFloat16, gpu_dtype = at::kHalf;

  static AutocastState current() {
    AutocastState s;
#ifdef ER_AUTOCAST_DEVICE_API
    s.cpu = at::autocast::is_autocast_enabled(at::kCPU);
    s.cpu_dtype = at::autocast::get_autocast_dtype(at::kCPU);
    s.gpu = at::autocast::is_autocast_enabled(at::kCUDA);
    s.gpu_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
#else
    s.cpu = at::autocast::is_cpu_enabled();
    s.cpu_dtype = at::autocast::get_autocast_cpu_dtype();
    s.gpu = at::autocast::is_enabled();
    s.gpu_dtype = at::autocast::get_autocast_gpu_dtype();
#endif
    return s;
  }
  void apply() const {
#ifdef ER_AUTOCAST_DEVICE_API
    at::autocast::set_autocast_dtype(at::kCPU, cpu_dtype);
    at::autocast::set_autocast_enabled(at::kCPU, cpu);
    at::autocast::set_autocast_dtype(at::kCUDA, gpu_dtype);
    at::autocast::set_autocast_enabled(at::kCUDA, gpu);
#else
    at::autocast::set_autocast_cpu_dtype(cpu_dtype);
    at::autocast::set_cpu_enabled(cpu);
    at::autocast::set_autocast_gpu_dtype(gpu_dtype);
    at::autocast::set_enabled(gpu);
#endif
  }
};

// Applies a saved autocast state for one scope and restores the thread's own afterwards.
class AutocastRestore {
 public:
  explicit AutocastRestore(const AutocastState& wanted) : previous_(AutocastState::current()) {
    wanted.apply();
    if (wanted.cpu || wanted.gpu) {
      at::autocast::increment_nesting();
      nested_ = true;
    }
  }
  ~AutocastRestore() {
    if (nested_ && at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    previous_.apply();
  }

 private:
  AutocastState previous_;
  bool nested_ = false;
};

// Carries the block and its parameters to backward through ctx->saved_data (an IValue capsule).
struct BlockHolder : torch::CustomClassHolder {
  BlockHolder(CheckpointBlock b, std::vector<at::Tensor> p, CheckpointBracket before_run, CheckpointBracket after_run)
      : block(std::move(b)), params(std::move(p)), before(std::move(before_run)), after(std::move(after_run)),
        autocast(AutocastState::current()) {}
  CheckpointBlock block;
  std::vector<at::Tensor> params;
  CheckpointBracket before, after;
  AutocastState autocast;  // the forward's mixed-precision mode, re-entered for the recompute
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // params are passed as a TensorList so autograd connects the output to them.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                            at::TensorList /*params*/, c10::intrusive_ptr<BlockHolder> holder) {
    ctx->saved_data["block"] = c10::IValue::make_capsule(holder);
    ctx->save_for_backward({input});
    if (holder->before) holder->before(false);
    at::Tensor output = holder->block(input);  // autograd is off here: no activations are kept
    if (holder->after) holder->after(false);
    return output;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    const at::Tensor input = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    at::Tensor output;
    if (holder->before) holder->before(true);
    {
      at::AutoGradMode enable(true);
      AutocastRestore autocast(holder->autocast);
      output = holder->block(input);
    }
    std::vector<at::Tensor> wrt{input};
    wrt.insert(wrt.end(), holder->params.begin(), holder->params.end());
    torch::autograd::variable_list out = torch::autograd::grad(
        {output}, wrt, {grad_outputs[0]}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    output.reset();  // the recompute's graph (and the weights it saved) goes before the release
    if (holder->after) holder->after(true);
    out.emplace_back();  // no gradient for the holder
    return out;
  }
};

}  // namespace

at::Tensor checkpoint(const CheckpointBlock& block, const at::Tensor& input, const std::vector<at::Tensor>& params,
                      CheckpointBracket before, CheckpointBracket after) {
  std::vector<at::Tensor> trainable;
  for (const auto& p : params)
    if (p.requires_grad()) trainable.push_back(p);
  if (!at::GradMode::is_enabled() || (trainable.empty() && !input.requires_grad())) {
    if (before) before(false);
    at::Tensor output = block(input);
    if (after) after(false);
    return output;
  }
  auto holder = c10::make_intrusive<BlockHolder>(block, trainable, std::move(before), std::move(after));
  return CheckpointFunction::apply(input, at::TensorList(trainable), holder);
}

}  // namespace edgerazor::model
