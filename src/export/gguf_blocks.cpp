// ggml block packing and unpacking (layouts in the header). Torch-free.
#include "edgerazor/export/gguf_blocks.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace edgerazor::exporter {
namespace {

constexpr int64_t kQK = 256;    // TQ super-block
constexpr int64_t kQK32 = 32;   // Q4_0 / Q8_0 block

void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xff);
  p[1] = static_cast<uint8_t>(v >> 8);
}
uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

void check_codes(GgmlType type, const int8_t* codes, int64_t n) {
  const int lo = ggml_min_code(type), hi = ggml_max_code(type);
  for (int64_t i = 0; i < n; ++i)
    if (codes[i] < lo || codes[i] > hi)
      throw std::invalid_argument(std::string(ggml_type_name(type)) + ": code " + std::to_string(codes[i]) +
                                  " at element " + std::to_string(i) + " is outside [" + std::to_string(lo) + ", " +
                                  std::to_string(hi) + "]");
}

// Base-3 byte of k trits (most significant first), padded to 5 trits, as ceil(q*256/243).
uint8_t trits_to_byte(const int* trits, int k) {
  uint32_t q = 0;
  for (int i = 0; i < k; ++i) q = q * 3 + static_cast<uint32_t>(trits[i]);
  for (int i = k; i < 5; ++i) q *= 3;
  return static_cast<uint8_t>((q * 256 + 242) / 243);
}

int byte_trit(uint8_t byte, int n) {
  static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
  const uint8_t q = static_cast<uint8_t>(byte * pow3[n]);  // wrap-around is intended
  return (static_cast<uint16_t>(q) * 3) >> 8;
}

// Element index -> (byte, trit position) maps of one TQ1_0 block, built once.
struct Tq1Map {
  int byte[256];
  int trit[256];
  Tq1Map() {
    for (int m = 0; m < 32; ++m)
      for (int n = 0; n < 5; ++n) byte[m + 32 * n] = m, trit[m + 32 * n] = n;
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 5; ++n) byte[160 + m + 16 * n] = 32 + m, trit[160 + m + 16 * n] = n;
    for (int j = 0; j < 4; ++j)
      for (int n = 0; n < 4; ++n) byte[240 + j + 4 * n] = 48 + j, trit[240 + j + 4 * n] = n;
  }
};
const Tq1Map& tq1_map() {
  static const Tq1Map map;
  return map;
}

}  // namespace

const char* ggml_type_name(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return "F32";
    case GgmlType::kF16: return "F16";
    case GgmlType::kQ4_0: return "Q4_0";
    case GgmlType::kQ8_0: return "Q8_0";
    case GgmlType::kBF16: return "BF16";
    case GgmlType::kTQ1_0: return "TQ1_0";
    case GgmlType::kTQ2_0: return "TQ2_0";
  }
  return "?";
}

bool ggml_type_known(uint32_t id) { return id == 0 || id == 1 || id == 2 || id == 8 || id == 30 || id == 34 || id == 35; }

int64_t ggml_block_size(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0:
    case GgmlType::kQ8_0: return kQK32;
    case GgmlType::kTQ1_0:
    case GgmlType::kTQ2_0: return kQK;
    default: return 1;
  }
}

size_t ggml_block_bytes(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return 4;
    case GgmlType::kF16:
    case GgmlType::kBF16: return 2;
    case GgmlType::kQ4_0: return 18;
    case GgmlType::kQ8_0: return 34;
    case GgmlType::kTQ1_0: return 54;
    case GgmlType::kTQ2_0: return 66;
  }
  return 0;
}

uint64_t ggml_row_bytes(GgmlType type, int64_t ne0) {
  const int64_t b = ggml_block_size(type);
  if (ne0 < 0 || ne0 % b != 0)
    throw std::invalid_argument(std::string(ggml_type_name(type)) + ": row length " + std::to_string(ne0) +
                                " is not a multiple of the block size " + std::to_string(b));
  return static_cast<uint64_t>(ne0 / b) * ggml_block_bytes(type);
}

int ggml_min_code(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0: return -8;
    case GgmlType::kQ8_0: return -127;
    case GgmlType::kTQ1_0:
    case GgmlType::kTQ2_0: return -1;
    default: return 0;
  }
}

int ggml_max_code(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0: return 7;
    case GgmlType::kQ8_0: return 127;
    case GgmlType::kTQ1_0:
    case GgmlType::kTQ2_0: return 1;
    default: return 0;
  }
}

uint16_t fp32_to_fp16(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u));  // NaN / Inf
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: Inf
  if (abs < 0x38800000u) {  // subnormal or zero in fp16: scale by 2^24 and round to an integer
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to 0
    float f;
    std::memcpy(&f, &abs, 4);
    const float scaled = f * 16777216.0f;  // exact (power of two)
    const uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));  // round half to even
    return static_cast<uint16_t>(sign | m);
  }
  const uint32_t mant = abs & 0x7fffffu;
  const uint32_t exp = (abs >> 23) - 127 + 15;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // carries into the exponent correctly
  return static_cast<uint16_t>(sign | h);
}

float fp16_to_fp32(uint16_t bits) {
  const uint32_t sign = (bits & 0x8000u) << 16;
  const uint32_t exp = (bits >> 10) & 0x1fu;
  const uint32_t mant = bits & 0x3ffu;
  float out;
  if (exp == 0) {
    out = std::ldexp(static_cast<float>(mant), -24);
    if (sign) out = -out;
    return out;
  }
  uint32_t x;
  if (exp == 31) x = sign | 0x7f800000u | (mant << 13);
  else x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  std::memcpy(&out, &x, 4);
  return out;
}

uint16_t fp32_to_bf16(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

float bf16_to_fp32(uint16_t bits) {
  const uint32_t x = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &x, 4);
  return out;
}

void pack_blocks(GgmlType type, const int8_t* codes, const uint16_t* d, int64_t n, uint8_t* out) {
  const int64_t bs = ggml_block_size(type);
  if (bs == 1) throw std::invalid_argument(std::string("pack_blocks: ") + ggml_type_name(type) + " is not a block type");
  ggml_row_bytes(type, n);  // checks divisibility
  check_codes(type, codes, n);
  const size_t bb = ggml_block_bytes(type);
  for (int64_t b = 0; b < n / bs; ++b) {
    const int8_t* c = codes + b * bs;
    uint8_t* y = out + b * bb;
    std::memset(y, 0, bb);
    switch (type) {
      case GgmlType::kTQ2_0:
        for (int e = 0; e < 256; ++e)
          y[32 * (e / 128) + e % 32] |= static_cast<uint8_t>((c[e] + 1) << (2 * ((e % 128) / 32)));
        put_u16(y + 64, d[b]);
        break;
      case GgmlType::kTQ1_0: {
        const Tq1Map& map = tq1_map();
        int trits[52][5] = {};
        for (int e = 0; e < 256; ++e) trits[map.byte[e]][map.trit[e]] = c[e] + 1;
        for (int j = 0; j < 48; ++j) y[j] = trits_to_byte(trits[j], 5);
        for (int j = 48; j < 52; ++j) y[j] = trits_to_byte(trits[j], 4);
        put_u16(y + 52, d[b]);
        break;
      }
      case GgmlType::kQ4_0:
        put_u16(y, d[b]);
        for (int j = 0; j < 16; ++j) y[2 + j] = static_cast<uint8_t>((c[j] + 8) | ((c[j + 16] + 8) << 4));
        break;
      case GgmlType::kQ8_0:
        put_u16(y, d[b]);
        std::memcpy(y + 2, c, 32);
        break;
      default: break;
    }
  }
}

void unpack_blocks(GgmlType type, const uint8_t* data, int64_t n, int8_t* codes, uint16_t* d) {
  const int64_t bs = ggml_block_size(type);
  if (bs == 1) throw std::invalid_argument(std::string("unpack_blocks: ") + ggml_type_name(type) + " is not a block type");
  ggml_row_bytes(type, n);
  const size_t bb = ggml_block_bytes(type);
  for (int64_t b = 0; b < n / bs; ++b) {
    const uint8_t* y = data + b * bb;
    int8_t* c = codes + b * bs;
    switch (type) {
      case GgmlType::kTQ2_0:
        for (int e = 0; e < 256; ++e) c[e] = static_cast<int8_t>(((y[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3) - 1);
        d[b] = get_u16(y + 64);
        break;
      case GgmlType::kTQ1_0: {
        const Tq1Map& map = tq1_map();
        for (int e = 0; e < 256; ++e) c[e] = static_cast<int8_t>(byte_trit(y[map.byte[e]], map.trit[e]) - 1);
        d[b] = get_u16(y + 52);
        break;
      }
      case GgmlType::kQ4_0:
        d[b] = get_u16(y);
        for (int j = 0; j < 16; ++j) {
          c[j] = static_cast<int8_t>((y[2 + j] & 0x0f) - 8);
          c[j + 16] = static_cast<int8_t>((y[2 + j] >> 4) - 8);
        }
        break;
      case GgmlType::kQ8_0:
        d[b] = get_u16(y);
        std::memcpy(c, y + 2, 32);
        break;
      default: break;
    }
  }
}

void dequantize_row(GgmlType type, const uint8_t* data, int64_t n, float* out) {
  switch (type) {
    case GgmlType::kF32: std::memcpy(out, data, static_cast<size_t>(n) * 4); return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(get_u16(data + 2 * i));
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(get_u16(data + 2 * i));
      return;
    default: break;
  }
  const int64_t bs = ggml_block_size(type);
  std::string codes(static_cast<size_t>(n), '\0');
  std::string scales(static_cast<size_t>(n / bs) * 2, '\0');
  auto* c = reinterpret_cast<int8_t*>(codes.data());
  auto* d = reinterpret_cast<uint16_t*>(scales.data());
  unpack_blocks(type, data, n, c, d);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(c[i]) * fp16_to_fp32(d[i / bs]);
}

}  // namespace edgerazor::exporter
