// Which module gets which quantizer, decided from names, types and shapes only (spec
// quantization.md §5.2, §5.3, §6) - no tensors involved. inject() describes a torch model with
// ModuleInfo and attaches what the plan says; the exporter and the compression report use the same
// plan on shapes alone (e.g. Qwen3-0.6B without its weights).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "edgerazor/config/quant_config.h"

namespace edgerazor::config {

struct ModuleInfo {
  std::string name;                  // dotted name ("model.layers.0.self_attn.q_proj"); root is ""
  std::string type_key;              // linear, embedding, conv2d, ..., or "" for composites
  bool is_attention = false;         // a kv_cache target
  std::vector<int64_t> weight_shape; // empty when the module has no quantizable weight
  const void* weight_id = nullptr;   // identity of the weight tensor (tied weights share it)
  int64_t head_dim = 0;              // of an attention module, when known (checks kv_block_size)
};

struct ModulePlan {
  std::string name;
  std::string type_key;
  std::vector<int64_t> weight_shape;
  QuantFunctionSettings settings;    // global function block with the matching overrides merged
  bool tied_duplicate = false;       // same weight as an earlier planned module: quantized once there
};

struct QuantPlan {
  std::vector<ModulePlan> weights;        // modules whose weight gets a quantizer
  std::vector<std::string> kv_modules;    // attention modules that get KV quantization
  QuantFunctionSettings kv_settings;      // global (KV settings are never overridden)
};

struct PlanOptions {
  bool strict_blocks = true;              // block sizes must divide the row length
  bool allow_unused_overrides = false;    // else an override that matches nothing is an error
};

// known_type_keys: what target_types patterns may name (from the module-type registry).
// Throws ConfigError naming the setting on: a type pattern matching no known key, an override
// matching no module, a block size that does not divide a weight's row, tied weights with
// different settings, a mixed function on a tensor whose rows are not whole blocks.
QuantPlan plan_quantization(const std::vector<ModuleInfo>& modules, const QuantConfig& config,
                            const std::vector<std::string>& known_type_keys, const PlanOptions& options = {});

// Bits and sizes of one planned weight (spec §2.5, §8.2).
struct WeightBits {
  double code_bits;     // per weight: 1.58, 4, 5, 8, or the mixed average with the real INT4 fraction
  double scale_bits;    // per weight: 16 * number of scales / numel
  double int4_fraction; // mixed: fraction of INT4 rows/blocks; 1 for INT4, 0 for ternary
  std::string label;    // "ternary", "int4", "mixed(12.5% int4)", ...
};
WeightBits weight_bits(const ModulePlan& plan);

struct CoverageReport {
  struct Row {
    std::string name, type_key, function, label;
    std::vector<int64_t> shape;
    int64_t numel;
    int64_t block_size;
    double code_bits, scale_bits;
    std::string activation_function;
  };
  std::vector<Row> rows;            // one per quantized weight (tied duplicates omitted)
  std::vector<std::string> kv_modules;
  std::string kv_function;
  int64_t kv_block_size = 0;
  int64_t total_params = 0;         // every parameter once (tied counted once)
  int64_t quantized_params = 0;

  double coverage() const;          // quantized / total
  double average_code_bits() const; // over quantized weights
  double average_bits_with_scales() const;
  // Theoretical size reduction vs 16-bit (spec §8.2): 16*total / (sum n*(b+scale) + rest*16).
  double compression_ratio() const;
  std::string to_text() const;      // table for logs
  std::string to_json() const;      // one JSON object
};

CoverageReport make_report(const QuantPlan& plan, int64_t total_params);

}  // namespace edgerazor::config
