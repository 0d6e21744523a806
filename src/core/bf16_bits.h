// bf16 <-> float on bit patterns, for the torch-free element loops (AdamW, fake quantization):
// branch-free so that the loops vectorise, and rounding like c10::BFloat16 (to nearest even, NaN
// stays NaN).
#pragma once

#include <cstdint>
#include <cstring>

namespace edgerazor::core {

inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return f != f ? static_cast<uint16_t>(0x7fc0) : static_cast<uint16_t>(rounded);
}

}  // namespace edgerazor::core
