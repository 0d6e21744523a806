// One-pass AdamW element updates for FusedAdamW (fused_adamw.h). Torch-free on purpose: this file
// is compiled with -fno-math-errno (CMakeLists.txt) so that sqrt vectorises, without the PCH.
#pragma once

#include <cstdint>

namespace edgerazor::train {

struct AdamWCoefficients {
  float decay;           // 1 - lr * weight_decay
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float sqrt_bc2;        // sqrt(1 - beta2^t)
  float eps;
  float neg_step_size;   // -lr / (1 - beta1^t)
  float grad_scale = 1;  // the gradient is read as g * grad_scale (a clipping coefficient; 1: none)
};

// p, g, m, v: n contiguous elements.
void adamw_update_f32(float* p, const float* g, float* m, float* v, int64_t n, AdamWCoefficients c);
// bf16 bit patterns; the update runs in float, p, m, v are rounded to nearest even once.
void adamw_update_bf16(uint16_t* p, const uint16_t* g, uint16_t* m, uint16_t* v, int64_t n, AdamWCoefficients c);

}  // namespace edgerazor::train
