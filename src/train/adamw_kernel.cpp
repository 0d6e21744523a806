// AdamW element loops (torch-free, compiled with -fno-math-errno so sqrt vectorises; CMakeLists.txt).
#include "edgerazor/train/adamw_kernel.h"

#include <cmath>

#include "../core/bf16_bits.h"

namespace edgerazor::train {

// The loops below vectorise (AVX-512 / AVX2 clones picked at load time): no aliasing, branch-free
// bf16 conversions, and sqrt without errno (v >= 0 always).
#define ER_ADAMW_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))

using core::bf16_to_float;
using core::float_to_bf16;

// fp32: the update in float, like ATen's kernels.
ER_ADAMW_KERNEL void adamw_update_f32(float* __restrict p, const float* __restrict g, float* __restrict m,
                                float* __restrict v, int64_t n, AdamWCoefficients c) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * c.grad_scale;  // as grad.mul_(coef) before the step, to the bit
    const float mi = m[i] * c.beta1 + c.one_minus_beta1 * gi;
    const float vi = v[i] * c.beta2 + c.one_minus_beta2 * gi * gi;
    const float denom = std::sqrt(vi) / c.sqrt_bc2 + c.eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * c.decay + c.neg_step_size * (mi / denom);
  }
}

// bf16 storage: the update runs in float and p, m, v are rounded once when stored (PyTorch's
// unfused AdamW rounds after each of its ~8 ops, so the two differ by bf16 rounding); the scaled
// gradient is not rounded either (grad.mul_(coef) would round it to bf16 first).
ER_ADAMW_KERNEL void adamw_update_bf16(uint16_t* __restrict p, const uint16_t* __restrict g, uint16_t* __restrict m,
                                 uint16_t* __restrict v, int64_t n, AdamWCoefficients c) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = bf16_to_float(g[i]) * c.grad_scale;  // not rounded to bf16 in between
    const float mi = bf16_to_float(m[i]) * c.beta1 + c.one_minus_beta1 * gi;
    const float vi = bf16_to_float(v[i]) * c.beta2 + c.one_minus_beta2 * gi * gi;
    const float denom = std::sqrt(vi) / c.sqrt_bc2 + c.eps;
    m[i] = float_to_bf16(mi);
    v[i] = float_to_bf16(vi);
    p[i] = float_to_bf16(bf16_to_float(p[i]) * c.decay + c.neg_step_size * (mi / denom));
  }
}

}  // namespace edgerazor::train
