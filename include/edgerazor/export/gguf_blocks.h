// Implements: the ggml block formats EdgeRazor writes (TQ1_0, TQ2_0, Q4_0, Q8_0, F16, F32), packed
// from exact integer codes and a per-block scale, plus the inverse (dequantization) for readers
// and tests. Torch-free. Byte layouts (ggml src/ggml-common.h, spec formats-and-peers.md §1):
//
//   TQ2_0  256 weights, 66 B: qs[64] then fp16 d. Element e sits in byte 32*(e/128) + e%32 at
//          bit shift 2*((e%128)/32), stored as code+1 in {0,1,2}.
//   TQ1_0  256 weights, 54 B: qs[48], qh[4], fp16 d. Base-3, most significant trit first, each
//          byte holding ceil(value*256/243): qs[m] (m<32) = weights m+32n, n=0..4; qs[32+m]
//          (m<16) = 160+m+16n; qh[j] = 240+j+4n (n=0..3) plus a zero padding trit.
//   Q4_0   32 weights, 18 B: fp16 d, then qs[16]; byte j: low nibble weight j, high nibble weight
//          j+16, stored as code+8.
//   Q8_0   32 weights, 34 B: fp16 d, then int8 codes.
// Values are code * d. Writing d = the trained scale and the trained codes is lossless up to the
// fp16 rounding of d; nothing is re-quantized.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace edgerazor::exporter {

// ggml_type ids as stored in GGUF tensor infos (ggml include/ggml.h).
enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kBF16 = 30, kTQ1_0 = 34, kTQ2_0 = 35 };

const char* ggml_type_name(GgmlType type);  // "F32", "TQ2_0", ...
bool ggml_type_known(uint32_t id);
int64_t ggml_block_size(GgmlType type);     // weights per block (1 for F32/F16/BF16)
size_t ggml_block_bytes(GgmlType type);     // bytes per block
// Bytes of a row of ne0 weights; ne0 must be a multiple of the block size.
uint64_t ggml_row_bytes(GgmlType type, int64_t ne0);
// The smallest and largest code a block type stores (ternary: -1..1, Q4_0: -8..7, Q8_0: -127..127).
int ggml_min_code(GgmlType type);
int ggml_max_code(GgmlType type);

// IEEE binary16 with round-to-nearest-even (GGML_FP32_TO_FP16), and back.
uint16_t fp32_to_fp16(float value);
float fp16_to_fp32(uint16_t bits);
uint16_t fp32_to_bf16(float value);  // round-to-nearest-even, like torch
float bf16_to_fp32(uint16_t bits);

// Packs n weights (a multiple of the block size) from codes and one fp16 scale per block into
// out (ggml_row_bytes(type, n) bytes). Only for quantized types; codes must lie in the type's
// range (checked; std::invalid_argument otherwise).
void pack_blocks(GgmlType type, const int8_t* codes, const uint16_t* block_scales_fp16, int64_t n, uint8_t* out);

// Decodes n weights of any supported type (F32, F16, BF16 included) into floats.
void dequantize_row(GgmlType type, const uint8_t* data, int64_t n, float* out);
// Codes and per-block fp16 scales of quantized data (inverse of pack_blocks).
void unpack_blocks(GgmlType type, const uint8_t* data, int64_t n, int8_t* codes, uint16_t* block_scales_fp16);

}  // namespace edgerazor::exporter
