// One pass of fake quantization over rows whose scales are known (one per row):
//   out = clamp(round(x / s), -qmax, qmax) * s
// with every op rounded to the storage dtype as ATen's div, round, clamp and mul each round (bf16:
// the quotient is rounded to bf16 before it is rounded to an integer), so the result is
// bit-identical to those four ATen ops; round is half to even, NaN stays NaN. Torch-free: the
// caller computes the scales with ATen (their reductions fix the bits) and splits rows over threads.
#pragma once

#include <cstdint>

namespace edgerazor::quant {

// x, out: rows * len contiguous elements (out may be x); scales: rows.
void fake_quant_rows_f32(const float* x, const float* scales, float* out, int64_t rows, int64_t len, float qmax);
// bf16 bit patterns.
void fake_quant_rows_bf16(const uint16_t* x, const uint16_t* scales, uint16_t* out, int64_t rows, int64_t len,
                          float qmax);

}  // namespace edgerazor::quant
