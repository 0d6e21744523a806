#include "edgerazor/config/quant_functions.h"

#include <algorithm>
#include <map>
#include <mutex>

namespace edgerazor::config {

const char* const kMixedFunctionPrefix = "weight_quant_uniform_symmetric_clip_per_block_mp_int1_58_int4_";

int FunctionInfo::qmax() const {
  switch (rule) {
    case QuantRule::kTernaryAbsmean:
    case QuantRule::kTernaryAbsmax:
      return 1;
    case QuantRule::kAsymmetricMax:
      return 7;
    default:
      return (1 << (bits - 1)) - 1;
  }
}

double mixed_bits_label(double int4_fraction) {
  return int4_fraction * 4.0 + (1.0 - int4_fraction) * kTernaryBits;
}

namespace {

std::vector<std::string>& strategy_names() {
  static std::vector<std::string> names = {"dynamic", "static", "static_column_wise",
                                           "static_row_wise_sparse", "static_sparse"};
  return names;
}

std::vector<FunctionInfo> build_catalogue() {
  std::vector<FunctionInfo> out;
  const char* grans[] = {"tensor", "channel", "block"};
  const Granularity gran_values[] = {Granularity::kTensor, Granularity::kChannel, Granularity::kBlock};
  for (int g = 0; g < 3; ++g) {
    const bool block = gran_values[g] == Granularity::kBlock;
    const int64_t default_block = block ? 256 : 0;
    const std::string gran = grans[g];
    out.push_back({"weight_quant_uniform_symmetric_clip_per_" + gran + "_int1_58", QuantRule::kTernaryAbsmean,
                   gran_values[g], 2, default_block, true, false, 2.0, 0.0, "", false});
    out.push_back({"weight_quant_uniform_symmetric_absmax_per_" + gran + "_int1_58", QuantRule::kTernaryAbsmax,
                   gran_values[g], 2, default_block, false, false, 0.0, 0.0, "", false});
    out.push_back({"weight_quant_uniform_symmetric_absmax_per_" + gran + "_int4", QuantRule::kSymmetricAbsmax,
                   gran_values[g], 4, default_block, false, false, 0.0, 0.0, "", false});
    out.push_back({"weight_quant_uniform_asymmetric_max_per_" + gran + "_int4", QuantRule::kAsymmetricMax,
                   gran_values[g], 4, default_block, false, false, 0.0, 0.0, "", false});
  }
  out.push_back({"weight_quant_uniform_symmetric_absmax_per_block_int5", QuantRule::kSymmetricAbsmax,
                 Granularity::kBlock, 5, 256, false, false, 0.0, 0.0, "", false});
  out.push_back({"weight_quant_uniform_symmetric_absmax_per_block_int8", QuantRule::kSymmetricAbsmax,
                 Granularity::kBlock, 8, 256, false, false, 0.0, 0.0, "", false});
  for (int bits : {2, 4, 8}) {
    const std::string b = std::to_string(bits);
    out.push_back({"state_quant_uniform_symmetric_absmax_per_token_int" + b, QuantRule::kSymmetricAbsmax,
                   Granularity::kToken, bits, 0, false, false, 0.0, 0.0, "", true});
    out.push_back({"state_quant_uniform_symmetric_absmax_per_block_int" + b, QuantRule::kSymmetricAbsmax,
                   Granularity::kBlock, bits, 256, false, false, 0.0, 0.0, "", true});
  }
  out.push_back({"state_quant_uniform_symmetric_absmax_per_block_mp_int4_int8_dynamic", QuantRule::kMixedInt4Int8,
                 Granularity::kBlock, 8, 256, false, true, 0.0, 0.01, "dynamic", true});
  return out;
}

const std::vector<FunctionInfo>& catalogue() {
  static const std::vector<FunctionInfo> functions = build_catalogue();
  return functions;
}

std::mutex& mixed_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

void register_mixed_strategy_name(const std::string& strategy) {
  std::lock_guard<std::mutex> lock(mixed_mutex());
  auto& names = strategy_names();
  if (std::find(names.begin(), names.end(), strategy) == names.end()) names.push_back(strategy);
}

const std::vector<std::string>& mixed_strategy_names() { return strategy_names(); }

const FunctionInfo* find_function(const std::string& name) {
  for (const auto& info : catalogue()) {
    if (info.name == name) return &info;
  }
  // Mixed ternary/INT4 functions: one name per strategy, built on demand.
  const std::string prefix = kMixedFunctionPrefix;
  if (name.compare(0, prefix.size(), prefix) == 0) {
    const std::string strategy = name.substr(prefix.size());
    std::lock_guard<std::mutex> lock(mixed_mutex());
    const auto& names = strategy_names();
    if (std::find(names.begin(), names.end(), strategy) == names.end()) return nullptr;
    static std::map<std::string, FunctionInfo> mixed;
    auto it = mixed.find(name);
    if (it == mixed.end()) {
      it = mixed.emplace(name, FunctionInfo{name, QuantRule::kMixedTernaryInt4, Granularity::kBlock, 4, 256,
                                            true, true, 2.0, 0.01, strategy, false}).first;
    }
    return &it->second;
  }
  return nullptr;
}

std::vector<std::string> function_names(bool states) {
  std::vector<std::string> names;
  for (const auto& info : catalogue()) {
    if (info.for_states == states) names.push_back(info.name);
  }
  if (!states) {
    for (const auto& strategy : mixed_strategy_names()) names.push_back(kMixedFunctionPrefix + strategy);
  }
  return names;
}

}  // namespace edgerazor::config
