// Fused row kernels of blocked causal attention (see causal_softmax.h). Per row r of a block that
// starts at query i0, the query sees keys [0, i0 + r]:
//   forward:  x = s * scale, p = exp(x - max x) / sum exp(x - max x), p = 0 beyond the visible keys
//   backward: ds = scale * p * (g - sum p g)
// in fp32 whatever the storage dtype (bf16 rounds once, on the store). exp is vec16's Cephes
// polynomial (relative error ~2e-7).
#include "causal_softmax.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "../runtime/openmp_required.h"
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#include "../core/vec16.h"

namespace edgerazor::model {
namespace {

using namespace core::vec16;  // NOLINT: the 16-lane helpers

// e = exp(x - max) of the visible keys into `e`, returns 1 / sum.
template <typename T>
ER_INLINE float row_exp(const T* s, int64_t live, float scale, float* e) {
  vf vmax = splat(-INFINITY);
  for (int64_t j = 0; j < live; j += kLanes) {
    const vf x = load_n(s + j, std::min(kLanes, live - j), -INFINITY) * scale;
    vmax = select(x > vmax, x, vmax);
  }
  const float m = hmax(vmax);
  vf acc = {};
  for (int64_t j = 0; j < live; j += kLanes) {
    const int64_t n = std::min(kLanes, live - j);
    const vf a = exp_neg(load_n(s + j, n, -INFINITY) * scale - m) * lane_mask(n);  // tail: exp(-inf) * 0
    store_n(e + j, a, n);
    acc += a;
  }
  return 1.0f / hsum(acc);
}

// p (storage dtype) and, when p32 is given, the fp32 probabilities of one row of L keys. p may be
// s itself (s is read completely before p is written); e is L floats of scratch or p32.
template <typename T>
ER_INLINE void softmax_row_impl(const T* s, int64_t L, int64_t live, float scale, T* p, float* p32, float* e) {
  const float inv = row_exp(s, live, scale, e);
  for (int64_t j = 0; j < L; j += kLanes) {
    const int64_t n = std::min(kLanes, L - j);
    const vf v = j < live ? load_n(e + j, std::min(n, live - j), 0.0f) * inv : vf{};
    store_n(p + j, v, n);
    if (p32 != nullptr && static_cast<const void*>(p32) != static_cast<const void*>(p)) store_n(p32 + j, v, n);
  }
}

// ds = scale * p * (g - sum p g), in place of g.
template <typename T>
ER_INLINE void softmax_backward_row_impl(T* g, const float* p, int64_t L, float scale) {
  vf acc = {};
  for (int64_t j = 0; j < L; j += kLanes) {
    const int64_t n = std::min(kLanes, L - j);
    acc += load_n(p + j, n, 0.0f) * load_n(g + j, n, 0.0f);
  }
  const float dot = hsum(acc);
  for (int64_t j = 0; j < L; j += kLanes) {
    const int64_t n = std::min(kLanes, L - j);
    store_n(g + j, load_n(p + j, n, 0.0f) * (load_n(g + j, n, 0.0f) - dot) * scale, n);
  }
}

#define ER_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
ER_CLONES void softmax_row_f32(const float* s, int64_t L, int64_t live, float scale, float* p, float* p32, float* e) {
  softmax_row_impl(s, L, live, scale, p, p32, e);
}
ER_CLONES void softmax_row_bf16(const uint16_t* s, int64_t L, int64_t live, float scale, uint16_t* p, float* p32,
                                float* e) {
  softmax_row_impl(s, L, live, scale, p, p32, e);
}
ER_CLONES void softmax_backward_row_f32(float* g, const float* p, int64_t L, float scale) {
  softmax_backward_row_impl(g, p, L, scale);
}
ER_CLONES void softmax_backward_row_bf16(uint16_t* g, const float* p, int64_t L, float scale) {
  softmax_backward_row_impl(g, p, L, scale);
}

uint16_t* bf16_data(at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

// Rows per task: a few thousand elements, so that short rows do not pay a task each.
int64_t grain(int64_t L) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(L, 1)); }

}  // namespace

bool causal_softmax_fused(const at::Tensor& scores) {
  return scores.device().is_cpu() && scores.dim() == 4 && scores.is_contiguous() &&
         (scores.scalar_type() == at::kFloat || scores.scalar_type() == at::kBFloat16);
}

at::Tensor causal_block_softmax_(at::Tensor& scores, int64_t i0, double scale, at::Tensor* probs32) {
  TORCH_CHECK(causal_softmax_fused(scores), "causal_block_softmax_: contiguous CPU fp32/bf16 (B, H, n, L) scores");
  const int64_t n = scores.size(2), L = scores.size(3), rows = scores.numel() / std::max<int64_t>(L, 1);
  TORCH_CHECK(i0 + n <= L, "causal_block_softmax_: block [", i0, ", ", i0 + n, ") sees more keys than L = ", L);
  const bool bf16 = scores.scalar_type() == at::kBFloat16;
  float* p32 = nullptr;
  if (probs32 != nullptr) {
    *probs32 = bf16 ? at::empty(scores.sizes(), scores.options().dtype(at::kFloat)) : scores;
    p32 = probs32->data_ptr<float>();
  }
  const float s = static_cast<float>(scale);
  at::parallel_for(0, rows, grain(L), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(p32 == nullptr ? L : 0);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t live = i0 + (r % n) + 1;
      float* row32 = p32 != nullptr ? p32 + r * L : nullptr;
      float* e = row32 != nullptr ? row32 : scratch.data();
      if (bf16) {
        uint16_t* row = bf16_data(scores) + r * L;
        softmax_row_bf16(row, L, live, s, row, row32, e);
      } else {
        float* row = scores.data_ptr<float>() + r * L;
        softmax_row_f32(row, L, live, s, row, row32, e);
      }
    }
  });
  return scores;
}

at::Tensor causal_block_softmax_backward_(at::Tensor& grad, const at::Tensor& probs32, double scale) {
  TORCH_CHECK(causal_softmax_fused(grad) && probs32.scalar_type() == at::kFloat && probs32.is_contiguous() &&
                  probs32.sizes() == grad.sizes(),
              "causal_block_softmax_backward_: contiguous CPU gradient and fp32 probabilities of one shape");
  const int64_t L = grad.size(3), rows = grad.numel() / std::max<int64_t>(L, 1);
  const bool bf16 = grad.scalar_type() == at::kBFloat16;
  const float s = static_cast<float>(scale);
  const float* p = probs32.data_ptr<float>();
  at::parallel_for(0, rows, grain(L), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (bf16) softmax_backward_row_bf16(bf16_data(grad) + r * L, p + r * L, L, s);
      else softmax_backward_row_f32(grad.data_ptr<float>() + r * L, p + r * L, L, s);
    }
  });
  return grad;
}

}  // namespace edgerazor::model
