// Implements: the packed EdgeRazor checkpoint - the smallest faithful form of a quantized model,
// in a safetensors container. Loading it back gives bit-identical codes, scales and fake-quant
// weights.
//
// For each quantized weight W (Hugging Face name, e.g. model.layers.0.mlp.up_proj.weight):
//   W.codes       U8   ternary codes (groups not marked INT4), flattened in group order, either
//                      base-3 (5 per byte: byte = sum_i (c_i + 1) * 3^i, element 5j+i) or 2-bit
//                      (4 per byte, element 4j+t at bits 2t..2t+1, stored c + 2; vLLM layout)
//   W.codes_int4  U8   INT4 codes (INT4 weights, or the INT4 groups of a mixed weight): element
//                      2j in the high nibble, 2j+1 in the low nibble, stored c + 8 (vLLM layout)
//   W.codes_int8  I8   wider codes (INT5/INT8 functions), raw
//   W.scales      F32/BF16/F16  one per group in the dtype training used, shape = groups
//   W.int4_mask   U8   mixed only: one bit per group (bit g%8 of byte g/8), 1 = INT4
// Tensors that are not quantized (norms, excluded modules) are stored as they are, under their
// own names. "__metadata__" holds: format "edgerazor-packed", version "1", model_config
// (config.json text), quantization (the config as YAML), preset, and "tensors": a JSON object
// mapping each quantized W to {function, rule, granularity, block_size, qmax, scale_factor, eps,
// strategy, mixed_prop, shape, groups (codes shape), numel, ternary_packing, scale_dtype}.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "edgerazor/export/quantized_model.h"

namespace edgerazor::exporter {

enum class TernaryPacking { kBase3, kTwoBit };

struct PackedOptions {
  TernaryPacking ternary = TernaryPacking::kBase3;
};

// Bytes written per source tensor (codes + scales + mask, or the plain tensor) and in total.
struct WrittenSizes {
  std::map<std::string, uint64_t> tensor_bytes;
  std::map<std::string, std::string> stored_as;  // "ternary_base3", "int4_nibbles", "mixed", "F32", ...
  uint64_t file_bytes = 0;
};

WrittenSizes write_packed(const QuantizedModel& model, const std::string& path, const PackedOptions& options = {});

struct PackedCheckpoint {
  model::ModelConfig config;
  std::string quantization_yaml;
  std::string preset;
  std::vector<ExportTensor> tensors;  // file's order of names; quantized ones with exact q
  const ExportTensor* find(const std::string& name) const;
};

// Reads and validates (FormatError naming the file and tensor on inconsistent metadata, sizes
// or codes); every quantized tensor's value is its dequantized fake-quant weight.
PackedCheckpoint read_packed(const std::string& path);
// A model whose weights are the packed fake-quant values (for evaluation / generation).
model::CausalLM load_packed_model(const std::string& path);
// The same with the A8 / KV8 hooks of the file's quantization config attached, i.e. the model as
// it was exported and will be deployed. Its weights stay the packed values (quantizing them again
// would not give the same codes: the scales would be recomputed from already-quantized values).
model::CausalLM load_packed_for_inference(const std::string& path);
// Whether `path` is a packed EdgeRazor checkpoint (a safetensors file whose metadata says so).
bool is_packed_checkpoint(const std::string& path);

// The packing primitives (spec quantization.md §7.3, §11).
std::vector<uint8_t> pack_ternary_base3(const int8_t* codes, int64_t n);
std::vector<uint8_t> pack_ternary_2bit(const int8_t* codes, int64_t n);
std::vector<uint8_t> pack_int4(const int8_t* codes, int64_t n);
void unpack_ternary_base3(const uint8_t* bytes, int64_t n, int8_t* codes);
void unpack_ternary_2bit(const uint8_t* bytes, int64_t n, int8_t* codes);
void unpack_int4(const uint8_t* bytes, int64_t n, int8_t* codes);

}  // namespace edgerazor::exporter
