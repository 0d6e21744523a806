// Quantization settings: what to quantize (select), with which functions (function), and
// per-module exceptions (overrides). Exactly the reference's qat_configuration keys (spec
// quantization.md §5.2-§5.3), typed and validated. Torch-free.
//
// Sentinels follow the reference (§1.8): a value <= 0 for w_scale_factor, *_block_size or
// *_mixed_precision_prop means "use the function's default". Differences from the reference,
// all turning silent surprises into errors naming the key:
//   - *_mixed_precision_prop == 0 with a mixed function (the reference silently uses 0.01);
//   - w_scale_factor > 0 or a mixed prop > 0 on a function that does not take it
//     (the reference raises a Python TypeError);
//   - an invalid regex (the reference falls back to string equality in overrides);
//   - an override that matches no module (checked at injection).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edgerazor::config {

// The `function` block; also the effective settings of one module after overrides.
struct QuantFunctionSettings {
  double epsilon = 1e-5;
  std::string weight_function = "weight_quant_uniform_symmetric_clip_per_block_int1_58";
  double w_scale_factor = -1;
  int64_t w_block_size = -1;
  double w_mixed_precision_prop = -1;
  bool is_w_quantized = false;
  std::string activation_function;  // "" = none
  int64_t a_block_size = -1;
  double a_mixed_precision_prop = -1;
  std::string kv_cache_function;    // "" = none
  int64_t kv_block_size = -1;
  double kv_mixed_precision_prop = -1;

  // Values with the function defaults filled in (never <= 0 where a default exists).
  double resolved_scale_factor() const;
  int64_t resolved_weight_block() const;
  double resolved_weight_prop() const;
  int64_t resolved_activation_block() const;
  int64_t resolved_kv_block() const;
};

// One overrides[] entry: optional type/name matchers plus any subset of the function keys.
struct QuantOverride {
  std::optional<std::string> type;
  std::optional<std::string> name;  // regex, matched at the start of the module name
  std::optional<double> epsilon;
  std::optional<std::string> weight_function;
  std::optional<double> w_scale_factor;
  std::optional<int64_t> w_block_size;
  std::optional<double> w_mixed_precision_prop;
  std::optional<bool> is_w_quantized;
  std::optional<std::string> activation_function;
  std::optional<int64_t> a_block_size;
  std::optional<double> a_mixed_precision_prop;
  // Where it came from, for error messages ("run.yaml:31:5: quantization.overrides[2]").
  std::string origin;

  void apply_to(QuantFunctionSettings& settings) const;
};

struct QuantSelect {
  std::vector<std::string> target_types;   // known keys or regexes fullmatched against them
  std::vector<std::string> target_names;   // exact names or regexes anchored at the start
  std::vector<std::string> exclude_types;
  std::vector<std::string> exclude_names;
};

struct QuantConfig {
  QuantSelect select;
  QuantFunctionSettings function;
  std::vector<QuantOverride> overrides;
  // false: a block size that does not divide a row is allowed (the reference's §1.1 cases 2-3:
  // blocks then span rows, or the last block is zero-padded); mixed functions still need whole
  // blocks per row. Our extension; true by default because crossing rows is rarely intended.
  bool strict_blocks = true;
  std::string preset;   // the preset it was expanded from, "" if none
  std::string origin;   // file (and key) it was read from, for messages
};

// Checks every function name, sentinel, block size and regex; throws ConfigError naming the key
// (prefixed with `where`, e.g. "run.yaml: quantization").
void validate(const QuantConfig& config, const std::string& where = "quantization");
void validate(const QuantFunctionSettings& settings, const std::string& where);

// Reads a YAML (or JSON) file holding either our `quantization` section, the reference's
// `qat_configuration` block, or a bare QAT section (select/function/overrides at top level).
QuantConfig load_quant_config_file(const std::string& path);
QuantConfig parse_quant_config_yaml(const std::string& yaml_text, const std::string& origin);

// YAML of a config, fully expanded (for --check and run directories). The preset, if any, is only
// named in a comment: its settings are already written out, so reading the text back gives the
// same config (naming the preset would apply its overrides twice).
std::string to_yaml(const QuantConfig& config);

}  // namespace edgerazor::config
