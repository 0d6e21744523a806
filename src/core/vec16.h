// 16-lane float vectors (GCC vector extensions) for the torch-free row kernels (the row-fused loss,
// the causal attention softmax): each target clone of a kernel lowers them to its ISA (AVX-512,
// AVX2 or scalar). Loads and stores take the valid lane count of a row's tail; bf16 converts on bit
// patterns and rounds like c10::BFloat16. A source that includes this compiles with -Wno-psabi
// (CMakeLists.txt).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace edgerazor::core::vec16 {

// The helpers pass 64-byte vectors by value; always inlined, so no ABI is involved.
#define ER_INLINE inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef uint32_t vu __attribute__((vector_size(64)));
typedef uint16_t vh __attribute__((vector_size(32)));
constexpr int64_t kLanes = 16;

ER_INLINE vf splat(float x) { return vf{} + x; }
ER_INLINE vf select(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }
ER_INLINE float hsum(vf v) {
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += v[l];
  return static_cast<float>(s);
}
ER_INLINE float hmax(vf v) {
  float m = v[0];
  for (int l = 1; l < kLanes; ++l) m = v[l] > m ? v[l] : m;
  return m;
}
ER_INLINE vf from_bf16(vh h) { return (vf)(__builtin_convertvector(h, vu) << 16); }
ER_INLINE vh to_bf16(vf v) {  // round to nearest even, NaN stays NaN (like c10::BFloat16)
  const vu u = (vu)v;
  const vu r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const vu nan = (vu)(v != v);
  return __builtin_convertvector((r & ~nan) | (0x7fc0u & nan), vh);
}
// n valid lanes from p, the rest `fill`.
ER_INLINE vf load_n(const float* p, int64_t n, float fill) {
  vf v;
  if (n == kLanes) {
    std::memcpy(&v, p, sizeof v);
  } else {
    v = splat(fill);
    for (int64_t l = 0; l < n; ++l) v[l] = p[l];
  }
  return v;
}
ER_INLINE vf load_n(const uint16_t* p, int64_t n, float fill) {
  if (n == kLanes) {
    vh h;
    std::memcpy(&h, p, sizeof h);
    return from_bf16(h);
  }
  vh h = {};
  for (int64_t l = 0; l < n; ++l) h[l] = p[l];
  vf v = from_bf16(h);
  for (int64_t l = n; l < kLanes; ++l) v[l] = fill;
  return v;
}
ER_INLINE void store_n(float* p, vf v, int64_t n) {
  if (n == kLanes) std::memcpy(p, &v, sizeof v);
  else for (int64_t l = 0; l < n; ++l) p[l] = v[l];
}
ER_INLINE void store_n(uint16_t* p, vf v, int64_t n) {
  const vh h = to_bf16(v);
  if (n == kLanes) std::memcpy(p, &h, sizeof h);
  else for (int64_t l = 0; l < n; ++l) p[l] = h[l];
}
ER_INLINE vf lane_mask(int64_t n) {  // 1 for the first n lanes, 0 after
  vf m;
  for (int64_t l = 0; l < kLanes; ++l) m[l] = l < n ? 1.0f : 0.0f;
  return m;
}

// exp for x <= 0 (Cephes expf polynomial, relative error ~2e-7); x < -87 gives ~1e-38.
ER_INLINE vf exp_neg(vf x) {
  x = select(x < -87.0f, splat(-87.0f), x);
  const vf fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const vf r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * (vf)((__builtin_convertvector(fn, vi) + 127) << 23);
}

// log for positive normal x (Cephes logf, relative error ~2e-7).
ER_INLINE vf log_pos(vf x) {
  const vu u = (vu)x;
  vf e = __builtin_convertvector((vi)((u >> 23) & 0xffu) - 126, vf);
  vf m = (vf)((u & 0x7fffffu) | 0x3f000000u);  // [0.5, 1)
  const vi small = m < 0.707106781186547524f;
  e = select(small, e - 1.0f, e);
  m = select(small, m + m - 1.0f, m - 1.0f);
  const vf z = m * m;
  vf y = splat(7.0376836292e-2f);
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y = y + e * -2.12194440e-4f;
  y = y - 0.5f * z;
  return m + y + e * 0.693359375f;
}

}  // namespace edgerazor::core::vec16
