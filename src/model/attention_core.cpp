// Attention core without fused kernels (libtorch < 2). See the header.
#include "edgerazor/model/attention_core.h"

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>

#include <algorithm>
#include <limits>

#include "edgerazor/runtime/autocast.h"
#include "causal_softmax.h"

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

// ---- causal attention in query blocks ----------------------------------------------------------

// Scores of queries [i0, i0 + n) against keys [0, L = i0 + n) (T == S, plain causal): (B, H, n, L) in
// the inputs' dtype.
at::Tensor causal_block_scores(const at::Tensor& q, const at::Tensor& k, int64_t i0, int64_t n) {
  return at::matmul(q.narrow(2, i0, n), k.narrow(2, 0, i0 + n).transpose(-2, -1));
}

// The block's probabilities in q's dtype, softmax in fp32 over the keys each query sees (inside
// the block's diagonal square a key after the query gets probability 0); `probs32` (optional)
// receives the fp32 probabilities. CPU fp32/bf16 run the fused kernels of causal_softmax.h (one
// pass); other devices and dtypes the ATen ops of attention_probs (scaled scores cast to fp32,
// masked with -inf).
at::Tensor causal_block_probs(const at::Tensor& q, const at::Tensor& k, int64_t i0, int64_t n, double scale,
                              at::Tensor* probs32) {
  at::Tensor scores = causal_block_scores(q, k, i0, n);
  if (causal_softmax_fused(scores)) return causal_block_softmax_(scores, i0, scale, probs32);
  scores = (scores * scale).to(at::kFloat);
  const at::Tensor r = at::arange(n, scores.options().dtype(at::kLong));
  const at::Tensor above = r.unsqueeze(0) > r.unsqueeze(1);  // (n, n): key after query
  scores.narrow(-1, i0, n).masked_fill_(above, -std::numeric_limits<float>::infinity());
  at::Tensor p32 = at::_softmax(scores, -1, /*half_to_float=*/false);
  if (probs32 != nullptr) *probs32 = p32;
  return p32.to(q.scalar_type());
}

// Gradient of the block's scores (q's dtype) from that of its probabilities (q's dtype).
at::Tensor causal_block_scores_grad(at::Tensor grad_probs, const at::Tensor& probs32, double scale) {
  if (causal_softmax_fused(grad_probs)) return causal_block_softmax_backward_(grad_probs, probs32, scale);
  const auto dtype = grad_probs.scalar_type();
  return at::_softmax_backward_data(grad_probs.to(at::kFloat), probs32, -1, at::kFloat).to(dtype) * scale;
}

class BlockedCausalAttention : public torch::autograd::Function<BlockedCausalAttention> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, double scale, int64_t block) {
    ctx->save_for_backward({q, k, v});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["block"] = block;
    const int64_t T = q.size(2);
    at::Tensor out = at::empty(q.sizes(), q.options());
    for (int64_t i0 = 0; i0 < T; i0 += block) {
      const int64_t n = std::min(block, T - i0);
      const at::Tensor probs = causal_block_probs(q, k, i0, n, scale, nullptr);
      out.narrow(2, i0, n).copy_(at::matmul(probs, v.narrow(2, 0, i0 + n)));
    }
    return out;
  }

  // Per block, RecomputedAttention's backward on the block's rows; the key and value gradients
  // sum over blocks in fp32 and are rounded once.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2];
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t block = ctx->saved_data["block"].toInt(), T = q.size(2);
    // The gradients below come from raw row kernels and in-place sums: no graph to differentiate again.
    TORCH_CHECK(!c10::GradMode::is_enabled(),
                "blocked causal attention: double backward (create_graph=true) is not supported");
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor grad_out = grads[0].contiguous();
    at::Tensor grad_q = at::empty(q.sizes(), q.options());
    at::Tensor grad_k = at::zeros(k.sizes(), k.options().dtype(at::kFloat));
    at::Tensor grad_v = at::zeros(v.sizes(), v.options().dtype(at::kFloat));
    for (int64_t i0 = 0; i0 < T; i0 += block) {
      const int64_t n = std::min(block, T - i0), L = i0 + n;
      at::Tensor probs32;
      const at::Tensor probs = causal_block_probs(q, k, i0, n, scale, &probs32);
      const at::Tensor g = grad_out.narrow(2, i0, n);
      grad_v.narrow(2, 0, L).add_(at::matmul(probs.transpose(-2, -1), g));
      const at::Tensor grad_scores =
          causal_block_scores_grad(at::matmul(g, v.narrow(2, 0, L).transpose(-2, -1)), probs32, scale);
      grad_q.narrow(2, i0, n).copy_(at::matmul(grad_scores, k.narrow(2, 0, L)));
      grad_k.narrow(2, 0, L).add_(at::matmul(grad_scores.transpose(-2, -1), q.narrow(2, i0, n)));
    }
    return {grad_q, grad_k.to(k.scalar_type()), grad_v.to(v.scalar_type()), at::Tensor(), at::Tensor()};
  }
};

// Under CPU autocast the matmuls would run in its dtype: cast here (differentiably) and keep
// autocast out, so that the recomputation in backward (no autocast there) sees the same inputs.
struct CastForAutocast {
  at::Tensor q, k, v;
  CastForAutocast(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in) : q(q_in), k(k_in), v(v_in) {
    if (const auto dtype = runtime::cpu_autocast_dtype(); dtype && q.device().is_cpu()) {
      q = q.to(*dtype);
      k = k.to(*dtype);
      v = v.to(*dtype);
    }
  }
};

}  // namespace

at::Tensor blocked_causal_attention(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                    double scale, int64_t block) {
  TORCH_CHECK(q_in.dim() == 4 && q_in.sizes() == k_in.sizes() && k_in.sizes() == v_in.sizes() && block > 0,
              "blocked_causal_attention: q, k, v must be (B, H, T, D) alike, got ", q_in.sizes(), " ", k_in.sizes(),
              " ", v_in.sizes());
  const CastForAutocast in(q_in, k_in, v_in);
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKeySet(c10::DispatchKey::AutocastCPU));
  return BlockedCausalAttention::apply(in.q, in.k, in.v, scale, block);
}

at::Tensor attention_core(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                          const at::Tensor& mask, double scale, bool recompute_in_backward) {
  const CastForAutocast in(q_in, k_in, v_in);
  const at::Tensor &q = in.q, &k = in.k, &v = in.v;
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKeySet(c10::DispatchKey::AutocastCPU));
  const c10::optional<at::Tensor> m = mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
  if (recompute_in_backward) return RecomputedAttention::apply(q, k, v, m, scale);
  return at::matmul(attention_probs(q, k, mask, scale).to(q.scalar_type()), v);
}

}  // namespace edgerazor::model
