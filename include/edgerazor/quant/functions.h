// Quantizers as pure tensor functions (spec quantization.md §1, §2, §4.1). Exact to the reference:
// every op runs in the dtype of the tensor it receives, in the reference's order (§0.2), with
// LibTorch's round-half-to-even. The module side (WeightQuantizer, hooks) calls these.
//
// Legend: N rows (out_features), K row length (in_features), B block size, NB = numel / B blocks.
// A "group" is what one scale covers: the whole tensor, one row (channel/token) or one block.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/config/quant_functions.h"

namespace edgerazor::quant {

// Everything a quantizer needs, resolved from a function name and its config keys.
struct QuantSpec {
  config::QuantRule rule = config::QuantRule::kTernaryAbsmean;
  config::Granularity granularity = config::Granularity::kBlock;
  int qmax = 1;               // Q_b: 1 ternary, 7 INT4, 15 INT5, 127 INT8
  int64_t block_size = 256;   // block granularity only
  double scale_factor = 2.0;  // ternary absmean only
  double eps = 1e-5;
  std::string strategy;       // mixed only
  double mixed_prop = 0.01;   // mixed only
  std::string function;       // the config name, for messages and export metadata
};

bool operator==(const QuantSpec& a, const QuantSpec& b);
inline bool operator!=(const QuantSpec& a, const QuantSpec& b) { return !(a == b); }

QuantSpec weight_spec(const config::QuantFunctionSettings& settings);
QuantSpec activation_spec(const config::QuantFunctionSettings& settings);  // requires activation_function
QuantSpec kv_spec(const config::QuantFunctionSettings& settings);          // requires kv_cache_function
QuantSpec spec_for(const std::string& function, int64_t block_size, double scale_factor, double mixed_prop,
                   double eps);

// Exact integer form of a quantized tensor: value = codes * scales, group by group.
struct QuantizedTensor {
  at::Tensor codes;        // int8, grouped shape (..., G): ternary {-1,0,1}, INT-b {-Q..Q}, asym {-8..7}
  at::Tensor scales;       // input dtype, grouped shape (..., 1)
  at::Tensor int4_groups;  // mixed only: bool, one per group (row-major block order), else undefined
  std::vector<int64_t> shape;  // original shape
  int64_t numel = 0;           // original element count (grouped tensors may carry padding)
  QuantSpec spec;

  // The fake-quant tensor in the original shape and the scales' dtype; equals fake_quantize().
  at::Tensor dequantize() const;
};

// True when every scale group of a (rows, row_length) matrix lies inside one row, so that
// Q(matrix)[i] == Q(matrix[i]): per-channel/per-token scales, or blocks that divide the row, for
// the non-mixed rules (mixed-precision masks depend on a block's global position).
bool groups_follow_rows(const QuantSpec& spec, int64_t row_length);

QuantizedTensor quantize(const at::Tensor& input, const QuantSpec& spec);
// codes * scales in the original shape, computed without keeping int8 codes.
at::Tensor fake_quantize(const at::Tensor& input, const QuantSpec& spec);

// ---- building blocks, exposed for tests and custom quantizers -------------------------------

// §1.1: view as (..., B) blocks. Case 1 keeps rows; case 2 flattens to (numel/B, B); case 3 pads
// with zeros (only when allow_padding, else throws).
at::Tensor to_blocks(const at::Tensor& input, int64_t block_size, bool allow_padding = true);
at::Tensor from_blocks(const at::Tensor& blocks, at::IntArrayRef shape);

// Scales of each group (last dim), keepdim.
at::Tensor absmean_scale(const at::Tensor& groups, double scale_factor, double eps);  // clamp(f*mean|x|, eps)
at::Tensor absmax_scale(const at::Tensor& groups, int qmax, double eps);              // clamp(max|x|, eps)/Q

// ---- SQMP mixed precision (§2) ----------------------------------------------------------------

struct MaskContext {
  int64_t rows;            // N (or 0 when the blocks do not follow whole rows)
  int64_t blocks_per_row;  // K / B (or 0)
  int64_t num_blocks;      // NB
  double prop;             // p
  const at::Tensor& blocks;  // (NB, B), for data-driven rules such as "dynamic"
};
// A strategy is a rule that returns a bool mask of shape (NB): true = INT4 block.
using MaskRule = std::function<at::Tensor(const MaskContext&)>;
// Adds a strategy; the function name "..._mp_int1_58_int4_<name>" becomes valid in configs.
void register_mixed_strategy(const std::string& name, MaskRule rule);
at::Tensor mixed_block_mask(const std::string& strategy, const MaskContext& context);

}  // namespace edgerazor::quant
