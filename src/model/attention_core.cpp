// Attention core without fused kernels (libtorch < 2). See the header.
#include "edgerazor/model/attention_core.h"

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>

#include "edgerazor/runtime/autocast.h"

namespace edgerazor::model {
namespace {

// softmax(q k^T * scale + mask) v with the ops and dtypes Hugging Face uses on libtorch < 2 (scores
// in the input dtype, softmax in fp32, probabilities back in the input dtype).
at::Tensor attention_probs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& mask, double scale) {
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;  // (B, H, T, S)
  if (mask.defined()) scores = scores + mask;
  return at::softmax(scores, -1, at::kFloat);
}

// The same attention as an autograd function that saves q, k, v (and the mask) only and
// recomputes the (B, H, T, S) scores in backward: without it every layer keeps its fp32
// probabilities and their input-dtype copy until backward (12-16 MiB per layer at B 4, H 8,
// T 256). Backward repeats autograd's own ops in its order, so gradients are bit-identical.
class RecomputedAttention : public torch::autograd::Function<RecomputedAttention> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const c10::optional<at::Tensor>& mask_or_none, double scale) {
    const at::Tensor mask = mask_or_none.value_or(at::Tensor());
    ctx->save_for_backward({q, k, v});
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["scale"] = scale;
    return at::matmul(attention_probs(q, k, mask, scale).to(q.scalar_type()), v);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2];
    const at::Tensor mask = ctx->saved_data["mask"].toTensor();
    const double scale = ctx->saved_data["scale"].toDouble();
    const at::Tensor& grad_out = grads[0];
    const at::Tensor probs32 = attention_probs(q, k, mask, scale);
    const at::Tensor probs = probs32.to(q.scalar_type());
    const at::Tensor grad_v = at::matmul(probs.transpose(-2, -1), grad_out);
    const at::Tensor grad_probs = at::matmul(grad_out, v.transpose(-2, -1)).to(at::kFloat);
    const at::Tensor grad_scores =
        at::_softmax_backward_data(grad_probs, probs32, -1, at::kFloat).to(q.scalar_type()) * scale;
    const at::Tensor grad_q = at::matmul(grad_scores, k);
    const at::Tensor grad_k = at::matmul(q.transpose(-2, -1), grad_scores).transpose(-2, -1);
    return {grad_q, grad_k, grad_v, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor attention_core(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                          const at::Tensor& mask, double scale, bool recompute_in_backward) {
  // Under CPU autocast the matmuls would run in its dtype: cast here (differentiably) and keep
  // autocast out, so that the recomputation in backward (no autocast there) sees the same inputs.
  at::Tensor q = q_in, k = k_in, v = v_in;
  if (const auto dtype = runtime::cpu_autocast_dtype(); dtype && q.device().is_cpu()) {
    q = q.to(*dtype);
    k = k.to(*dtype);
    v = v.to(*dtype);
  }
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKeySet(c10::DispatchKey::AutocastCPU));
  const c10::optional<at::Tensor> m = mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
  if (recompute_in_backward) return RecomputedAttention::apply(q, k, v, m, scale);
  return at::matmul(attention_probs(q, k, mask, scale).to(q.scalar_type()), v);
}

}  // namespace edgerazor::model
