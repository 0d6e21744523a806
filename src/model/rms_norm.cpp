// RMSNorm with a fused backward (see rms_norm.h). Per row of D elements, with r = 1 / rms (fp32),
// gn = g * w (rounded to the storage dtype, as autograd's product), dot = sum(gn * x):
//   dx = gn * r - x * r^3 * dot / D,    dw += g * n, n = (x * r) rounded to the storage dtype.
#include "edgerazor/model/rms_norm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "../runtime/openmp_required.h"
#include <c10/core/GradMode.h>
#include <torch/autograd.h>

#include <algorithm>

#include "../core/vec16.h"

namespace edgerazor::model {
namespace {

using namespace core::vec16;  // NOLINT: the 16-lane helpers

// Hugging Face's ops; `rstd` receives the (..., 1) fp32 1/rms.
at::Tensor forward_ops(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor* rstd) {
  const at::Tensor x32 = x.to(at::kFloat);
  at::Tensor r = at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  const at::Tensor normed = x32 * r;
  if (rstd != nullptr) *rstd = r;
  return weight * normed.to(x.scalar_type());
}

ER_INLINE vf round_as(vf v, const float*) { return v; }
ER_INLINE vf round_as(vf v, const uint16_t*) { return from_bf16(to_bf16(v)); }

template <typename T>
ER_INLINE void backward_row_impl(const T* x, const T* g, const T* w, float r, int64_t D, T* dx, float* dw) {
  vf acc = {};
  for (int64_t j = 0; j < D; j += kLanes) {
    const int64_t n = std::min(kLanes, D - j);
    acc += round_as(load_n(g + j, n, 0.0f) * load_n(w + j, n, 0.0f), g) * load_n(x + j, n, 0.0f);
  }
  const float c = -r * r * r * hsum(acc) / static_cast<float>(D);
  for (int64_t j = 0; j < D; j += kLanes) {
    const int64_t n = std::min(kLanes, D - j);
    const vf gv = load_n(g + j, n, 0.0f), xv = load_n(x + j, n, 0.0f);
    const vf gn = round_as(gv * load_n(w + j, n, 0.0f), g);
    store_n(dx + j, gn * r + xv * c, n);
    store_n(dw + j, load_n(dw + j, n, 0.0f) + gv * round_as(xv * r, x), n);
  }
}

#define ER_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
ER_CLONES void backward_rows_f32(const float* x, const float* g, const float* w, const float* r, int64_t rows,
                                 int64_t D, float* dx, float* dw) {
  for (int64_t i = 0; i < rows; ++i) backward_row_impl(x + i * D, g + i * D, w, r[i], D, dx + i * D, dw);
}
ER_CLONES void backward_rows_bf16(const uint16_t* x, const uint16_t* g, const uint16_t* w, const float* r,
                                  int64_t rows, int64_t D, uint16_t* dx, float* dw) {
  for (int64_t i = 0; i < rows; ++i) backward_row_impl(x + i * D, g + i * D, w, r[i], D, dx + i * D, dw);
}

const uint16_t* bf16_data(const at::Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>());
}

class FusedRMSNorm : public torch::autograd::Function<FusedRMSNorm> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            double eps) {
    at::Tensor r;
    at::Tensor y = forward_ops(x, weight, eps, &r);
    ctx->save_for_backward({x, weight, r.contiguous()});
    ctx->saved_data["eps"] = eps;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &r = saved[2];
    // The fused backward writes raw rows: no graph to differentiate again.
    TORCH_CHECK(!c10::GradMode::is_enabled(), "rms_norm: double backward (create_graph=true) is not supported");
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor g = grads[0].contiguous();
    if (g.scalar_type() != x.scalar_type() || g.sizes() != x.sizes()) {  // autograd of the same ops
      at::AutoGradMode enable(true);
      const at::Tensor xg = x.detach().requires_grad_(true), wg = w.detach().requires_grad_(true);
      const at::Tensor y = forward_ops(xg, wg, ctx->saved_data["eps"].toDouble(), nullptr);
      const auto gr = torch::autograd::grad({y}, {xg, wg}, {g});
      return {gr[0], gr[1], at::Tensor()};
    }
    const int64_t D = x.size(-1), rows = x.numel() / std::max<int64_t>(D, 1);
    at::Tensor dx = at::empty_like(x, at::MemoryFormat::Contiguous);
    // One fp32 weight-gradient accumulator per chunk of rows (one chunk per thread), summed at the end.
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows));
    at::Tensor dw = at::zeros({chunks, D}, x.options().dtype(at::kFloat));
    const bool bf16 = x.scalar_type() == at::kBFloat16;
    const float* rp = r.data_ptr<float>();
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
        float* acc = dw.data_ptr<float>() + c * D;
        if (bf16) {
          backward_rows_bf16(bf16_data(x) + r0 * D, bf16_data(g) + r0 * D, bf16_data(w), rp + r0, r1 - r0, D,
                             reinterpret_cast<uint16_t*>(dx.data_ptr<at::BFloat16>()) + r0 * D, acc);
        } else {
          backward_rows_f32(x.data_ptr<float>() + r0 * D, g.data_ptr<float>() + r0 * D, w.data_ptr<float>(), rp + r0,
                            r1 - r0, D, dx.data_ptr<float>() + r0 * D, acc);
        }
      }
    });
    return {dx, dw.sum(0).to(w.scalar_type()), at::Tensor()};
  }
};

bool fusable(const at::Tensor& x, const at::Tensor& weight) {
  const auto dt = x.scalar_type();
  return x.device().is_cpu() && weight.device().is_cpu() && (dt == at::kFloat || dt == at::kBFloat16) &&
         weight.scalar_type() == dt && x.is_contiguous() && weight.is_contiguous() && weight.dim() == 1 &&
         x.dim() >= 1 && x.size(-1) == weight.size(0) && x.numel() > 0;
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const bool records = c10::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad());
  if (records && fusable(x, weight)) return FusedRMSNorm::apply(x, weight, eps);
  return forward_ops(x, weight, eps, nullptr);
}

}  // namespace edgerazor::model
