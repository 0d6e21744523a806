// Fused fake-quantization element loop (see the header). Torch-free and without the PCH, so that
// the loops vectorise in each instruction-set clone.
#include "edgerazor/quant/fake_quant_kernel.h"

#include <cmath>

#include "../core/bf16_bits.h"

namespace edgerazor::quant {
namespace {

using core::bf16_to_float;
using core::float_to_bf16;

#define ER_FQ_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))

// round half to even (std::nearbyint in the default mode) then ATen's clamp: NaN passes through
// (both comparisons are false), +-inf clamp to +-qmax.
inline float round_clamp(float q, float qmax) {
  float r = __builtin_rintf(q);
  r = r < -qmax ? -qmax : r;
  return r > qmax ? qmax : r;
}

}  // namespace

ER_FQ_KERNEL void fake_quant_rows_f32(const float* x, const float* scales, float* out, int64_t rows, int64_t len,
                                      float qmax) {
  for (int64_t r = 0; r < rows; ++r) {
    const float s = scales[r];
    const float* xr = x + r * len;
    float* o = out + r * len;
    for (int64_t j = 0; j < len; ++j) o[j] = round_clamp(xr[j] / s, qmax) * s;
  }
}

ER_FQ_KERNEL void fake_quant_rows_bf16(const uint16_t* x, const uint16_t* scales, uint16_t* out, int64_t rows,
                                       int64_t len, float qmax) {
  for (int64_t r = 0; r < rows; ++r) {
    const float s = bf16_to_float(scales[r]);
    const uint16_t* xr = x + r * len;
    uint16_t* o = out + r * len;
    for (int64_t j = 0; j < len; ++j) {
      const float q = bf16_to_float(float_to_bf16(bf16_to_float(xr[j]) / s));  // ATen's bf16 div
      o[j] = float_to_bf16(round_clamp(q, qmax) * s);  // round and clamp are exact in bf16
    }
  }
}

}  // namespace edgerazor::quant
