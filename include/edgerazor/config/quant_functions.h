// The catalogue of quantizer function names (spec quantization.md §1.6, §4.1, §2.2): what rule,
// granularity, grid and defaults each name stands for. Torch-free: configs are validated against
// it before any model exists.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgerazor::config {

enum class QuantRule {
  kTernaryAbsmean,     // s = clamp(factor*mean|w|, eps), q in {-1,0,1}        (§1.2)
  kTernaryAbsmax,      // s = clamp(max|w|, eps),         q in {-1,0,1}        (§1.3)
  kSymmetricAbsmax,    // s = clamp(max|w|, eps)/Q,       q in {-Q..Q}         (§1.4, §4.1)
  kAsymmetricMax,      // s = max(w)/7 (fallback max|w|/7), u in {0..15}, zero 8 (§1.5)
  kMixedTernaryInt4,   // SQMP: per block INT4 absmax or ternary absmean by a mask (§2)
  kMixedInt4Int8,      // deprecated state mixed precision (§2.6)
};

enum class Granularity { kTensor, kChannel, kBlock, kToken };

struct FunctionInfo {
  std::string name;
  QuantRule rule;
  Granularity granularity;
  int bits;                   // 2 for ternary (codes), 4, 5, 8; mixed: 4 (the wider one)
  int64_t default_block_size; // 0 when the granularity has no blocks
  bool takes_scale_factor;    // accepts w_scale_factor
  bool takes_mixed_prop;      // accepts *_mixed_precision_prop
  double default_scale_factor;
  double default_mixed_prop;
  std::string strategy;       // mixed only: static_row_wise_sparse, static, dynamic, ...
  bool for_states;            // state_quant_* (activations, KV) vs weight_quant_*
  int qmax() const;           // symmetric integer limit Q_b (1 for ternary)
};

// nullptr when the name is unknown.
const FunctionInfo* find_function(const std::string& name);
// All known names (weights first, then states), for error messages and docs.
std::vector<std::string> function_names(bool states);

// SQMP strategy names. Built in: dynamic, static, static_column_wise, static_row_wise_sparse,
// static_sparse. The torch side registers the mask rule; this list only knows the names so a
// new rule becomes a valid function name
// "weight_quant_uniform_symmetric_clip_per_block_mp_int1_58_int4_<strategy>".
void register_mixed_strategy_name(const std::string& strategy);
const std::vector<std::string>& mixed_strategy_names();

extern const char* const kMixedFunctionPrefix;  // "..._mp_int1_58_int4_"

// Average weight bits of a mixed tensor's label (§2.5): p*4 + (1-p)*1.58.
double mixed_bits_label(double int4_fraction);
constexpr double kTernaryBits = 1.58;

}  // namespace edgerazor::config
