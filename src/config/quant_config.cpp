#include "edgerazor/config/quant_config.h"

#include <fstream>
#include <regex>
#include <sstream>

#include "edgerazor/config/quant_functions.h"
#include "edgerazor/config/quant_presets.h"
#include "edgerazor/core/error.h"
#include "yaml_util.h"

namespace edgerazor::config {
namespace {

const FunctionInfo* info_or_null(const std::string& name) { return name.empty() ? nullptr : find_function(name); }

}  // namespace

double QuantFunctionSettings::resolved_scale_factor() const {
  const FunctionInfo* info = info_or_null(weight_function);
  if (w_scale_factor > 0) return w_scale_factor;
  return info ? info->default_scale_factor : 2.0;
}

int64_t QuantFunctionSettings::resolved_weight_block() const {
  if (w_block_size > 0) return w_block_size;
  const FunctionInfo* info = info_or_null(weight_function);
  return info ? info->default_block_size : 256;
}

double QuantFunctionSettings::resolved_weight_prop() const {
  if (w_mixed_precision_prop > 0) return w_mixed_precision_prop;
  const FunctionInfo* info = info_or_null(weight_function);
  return info ? info->default_mixed_prop : 0.0;
}

int64_t QuantFunctionSettings::resolved_activation_block() const {
  if (a_block_size > 0) return a_block_size;
  const FunctionInfo* info = info_or_null(activation_function);
  return info ? info->default_block_size : 256;
}

int64_t QuantFunctionSettings::resolved_kv_block() const {
  if (kv_block_size > 0) return kv_block_size;
  const FunctionInfo* info = info_or_null(kv_cache_function);
  return info ? info->default_block_size : 256;
}

void QuantOverride::apply_to(QuantFunctionSettings& s) const {
  if (epsilon) s.epsilon = *epsilon;
  if (weight_function) s.weight_function = *weight_function;
  if (w_scale_factor) s.w_scale_factor = *w_scale_factor;
  if (w_block_size) s.w_block_size = *w_block_size;
  if (w_mixed_precision_prop) s.w_mixed_precision_prop = *w_mixed_precision_prop;
  if (is_w_quantized) s.is_w_quantized = *is_w_quantized;
  if (activation_function) s.activation_function = *activation_function;
  if (a_block_size) s.a_block_size = *a_block_size;
  if (a_mixed_precision_prop) s.a_mixed_precision_prop = *a_mixed_precision_prop;
}

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

[[noreturn]] void fail(const std::string& where, const std::string& key, const std::string& message) {
  throw ConfigError(where + "." + key + ": " + message);
}

void check_prop(const std::string& where, const std::string& key, double prop, const FunctionInfo* info) {
  if (prop < 0) return;  // sentinel: function default
  if (!info) return;
  if (!info->takes_mixed_prop) {
    if (prop > 0) fail(where, key, "function '" + info->name + "' does not take a mixed-precision proportion; "
                                   "use -1 or remove the key");
    return;
  }
  if (prop == 0)
    fail(where, key, "0 is ambiguous (the reference silently uses 0.01); use -1 for the default 0.01, a value in "
                     "(0, 1], or the pure ternary function for no INT4 at all");
  if (prop > 1) fail(where, key, "must be in (0, 1], got " + std::to_string(prop));
}

void check_block(const std::string& where, const std::string& key, int64_t block, const FunctionInfo* info) {
  if (block <= 0 || !info) return;
  if (info->granularity != Granularity::kBlock)
    fail(where, key, "function '" + info->name + "' has no blocks; use -1 or remove the key");
}

const FunctionInfo* check_function(const std::string& where, const std::string& key, const std::string& name,
                                   bool states) {
  if (name.empty()) return nullptr;
  const FunctionInfo* info = find_function(name);
  if (!info) fail(where, key, "unknown function '" + name + "' (known: " + join(function_names(states)) + ")");
  if (info->for_states != states)
    fail(where, key, "'" + name + "' is a " + (info->for_states ? "state (activation/KV)" : "weight") +
                         " function, not a " + (states ? "state" : "weight") + " function");
  return info;
}

void check_regex(const std::string& where, const std::string& key, const std::string& pattern) {
  try {
    std::regex compiled(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail(where, key, "regex '" + pattern + "' does not compile: " + e.what());
  }
}

}  // namespace

void validate(const QuantFunctionSettings& s, const std::string& where) {
  if (!(s.epsilon > 0)) fail(where, "epsilon", "must be > 0, got " + std::to_string(s.epsilon));
  const FunctionInfo* w = check_function(where, "weight_function", s.weight_function, false);
  if (w && !w->takes_scale_factor && s.w_scale_factor > 0)
    fail(where, "w_scale_factor", "function '" + w->name + "' does not take a scale factor; use -1 or remove the key");
  check_block(where, "w_block_size", s.w_block_size, w);
  check_prop(where, "w_mixed_precision_prop", s.w_mixed_precision_prop, w);
  const FunctionInfo* a = check_function(where, "activation_function", s.activation_function, true);
  check_block(where, "a_block_size", s.a_block_size, a);
  check_prop(where, "a_mixed_precision_prop", s.a_mixed_precision_prop, a);
  const FunctionInfo* kv = check_function(where, "kv_cache_function", s.kv_cache_function, true);
  check_block(where, "kv_block_size", s.kv_block_size, kv);
  check_prop(where, "kv_mixed_precision_prop", s.kv_mixed_precision_prop, kv);
}

void validate(const QuantConfig& config, const std::string& where) {
  const auto check_list = [&](const char* key, const std::vector<std::string>& patterns) {
    for (size_t i = 0; i < patterns.size(); ++i)
      check_regex(where, std::string("select.") + key + "[" + std::to_string(i) + "]", patterns[i]);
  };
  check_list("target_types", config.select.target_types);
  check_list("target_names", config.select.target_names);
  check_list("exclude_types", config.select.exclude_types);
  check_list("exclude_names", config.select.exclude_names);
  validate(config.function, where + ".function");
  for (size_t i = 0; i < config.overrides.size(); ++i) {
    const auto& o = config.overrides[i];
    const std::string at = where + ".overrides[" + std::to_string(i) + "]";
    if (!o.type && !o.name) fail(at, "name", "an override needs a 'type' or a 'name' (it would match nothing)");
    if (o.name) check_regex(at, "name", *o.name);
    QuantFunctionSettings merged = config.function;
    o.apply_to(merged);
    validate(merged, at);
  }
}

// ------------------------------------------------------------------------------------------------
// YAML

namespace {

using yaml::Located;

void read_function_keys(const Located& at, QuantFunctionSettings& s) {
  yaml::check_keys(at, {"epsilon", "weight_function", "w_scale_factor", "w_block_size", "w_mixed_precision_prop",
                        "is_w_quantized", "activation_function", "a_block_size", "a_mixed_precision_prop",
                        "kv_cache_function", "kv_block_size", "kv_mixed_precision_prop"});
  yaml::read_if(at, "epsilon", s.epsilon, yaml::as_double);
  yaml::read_if(at, "weight_function", s.weight_function, yaml::as_string);
  yaml::read_if(at, "w_scale_factor", s.w_scale_factor, yaml::as_double);
  yaml::read_if(at, "w_block_size", s.w_block_size, yaml::as_int);
  yaml::read_if(at, "w_mixed_precision_prop", s.w_mixed_precision_prop, yaml::as_double);
  yaml::read_if(at, "is_w_quantized", s.is_w_quantized, yaml::as_bool);
  yaml::read_if(at, "activation_function", s.activation_function, yaml::as_string);
  yaml::read_if(at, "a_block_size", s.a_block_size, yaml::as_int);
  yaml::read_if(at, "a_mixed_precision_prop", s.a_mixed_precision_prop, yaml::as_double);
  yaml::read_if(at, "kv_cache_function", s.kv_cache_function, yaml::as_string);
  yaml::read_if(at, "kv_block_size", s.kv_block_size, yaml::as_int);
  yaml::read_if(at, "kv_mixed_precision_prop", s.kv_mixed_precision_prop, yaml::as_double);
}

template <typename T, typename F>
void read_optional(const Located& parent, const char* key, std::optional<T>& target, F convert) {
  const Located at = parent.child(key);
  if (at.node.IsDefined()) target = convert(at);
}

QuantOverride read_override(const Located& at) {
  yaml::check_keys(at, {"type", "name", "epsilon", "weight_function", "w_scale_factor", "w_block_size",
                        "w_mixed_precision_prop", "is_w_quantized", "activation_function", "a_block_size",
                        "a_mixed_precision_prop"});
  QuantOverride o;
  read_optional(at, "type", o.type, yaml::as_string);
  read_optional(at, "name", o.name, yaml::as_string);
  read_optional(at, "epsilon", o.epsilon, yaml::as_double);
  read_optional(at, "weight_function", o.weight_function, yaml::as_string);
  read_optional(at, "w_scale_factor", o.w_scale_factor, yaml::as_double);
  read_optional(at, "w_block_size", o.w_block_size, yaml::as_int);
  read_optional(at, "w_mixed_precision_prop", o.w_mixed_precision_prop, yaml::as_double);
  read_optional(at, "is_w_quantized", o.is_w_quantized, yaml::as_bool);
  read_optional(at, "activation_function", o.activation_function, yaml::as_string);
  read_optional(at, "a_block_size", o.a_block_size, yaml::as_int);
  read_optional(at, "a_mixed_precision_prop", o.a_mixed_precision_prop, yaml::as_double);
  const auto mark = at.node.Mark();
  o.origin = at.file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ": " + at.path;
  return o;
}

// Where a validation error inside this section should point: "file:line:col: path".
std::string where_of(const Located& at) {
  if (!at.node.IsDefined()) return at.file + ": " + at.path;
  const auto mark = at.node.Mark();
  return at.file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ": " + at.path;
}

}  // namespace

namespace detail {

// Reads one quantization section (ours or the reference's qat_configuration). Exposed to the
// run-config parser through src/config/quant_config_yaml.h.
QuantConfig read_quant_section(const Located& at) {
  yaml::check_keys(at, {"preset", "select", "function", "overrides", "strict_blocks", "training", "method",
                        "log_level"});
  QuantConfig config;
  const Located preset_at = at.child("preset");
  if (preset_at.node.IsDefined()) {
    const std::string name = yaml::as_string(preset_at);
    try {
      config = preset(name);
    } catch (const ConfigError& e) {
      preset_at.fail(e.what());
    }
  }
  const Located method = at.child("method");
  if (method.node.IsDefined()) {
    std::string m = yaml::as_string(method);
    for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (m != "QAT") method.fail("must be QAT in a quantization section, got '" + m + "'");
  }
  const Located select = at.child("select");
  if (select.node.IsDefined()) {
    yaml::check_keys(select, {"target_types", "target_names", "exclude_types", "exclude_names"});
    yaml::read_if(select, "target_types", config.select.target_types, yaml::as_string_list);
    yaml::read_if(select, "target_names", config.select.target_names, yaml::as_string_list);
    yaml::read_if(select, "exclude_types", config.select.exclude_types, yaml::as_string_list);
    yaml::read_if(select, "exclude_names", config.select.exclude_names, yaml::as_string_list);
  }
  const Located function = at.child("function");
  if (function.node.IsDefined()) read_function_keys(function, config.function);
  yaml::read_if(at, "strict_blocks", config.strict_blocks, yaml::as_bool);
  const Located overrides = at.child("overrides");
  if (overrides.node.IsDefined() && !overrides.node.IsNull()) {
    if (!overrides.node.IsSequence()) overrides.fail("expected a list of override entries");
    for (size_t i = 0; i < overrides.node.size(); ++i) config.overrides.push_back(read_override(overrides.element(i)));
  }
  config.origin = where_of(at);
  validate(config, where_of(at));
  return config;
}

}  // namespace detail

QuantConfig parse_quant_config_yaml(const std::string& yaml_text, const std::string& origin) {
  const YAML::Node root = yaml::parse_text(yaml_text, origin);
  Located top{root, origin, ""};
  if (!root.IsMap()) top.fail("expected a mapping at the top of the file");
  if (root["quantization"]) return detail::read_quant_section(top.child("quantization"));
  if (root["qat_configuration"]) return detail::read_quant_section(top.child("qat_configuration"));
  return detail::read_quant_section(top);
}

QuantConfig load_quant_config_file(const std::string& path) {
  return parse_quant_config_yaml(yaml::read_file_text(path), path);
}

std::string yaml::read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string to_yaml(const QuantConfig& config) {
  YAML::Emitter out;
  if (!config.preset.empty()) out << YAML::Comment("expanded from preset " + config.preset) << YAML::Newline;
  out << YAML::BeginMap;
  if (!config.strict_blocks) out << YAML::Key << "strict_blocks" << YAML::Value << false;
  out << YAML::Key << "select" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "target_types" << YAML::Value << YAML::Flow << config.select.target_types;
  out << YAML::Key << "target_names" << YAML::Value << YAML::Flow << config.select.target_names;
  out << YAML::Key << "exclude_types" << YAML::Value << YAML::Flow << config.select.exclude_types;
  out << YAML::Key << "exclude_names" << YAML::Value << YAML::Flow << config.select.exclude_names;
  out << YAML::EndMap;
  const auto& f = config.function;
  out << YAML::Key << "function" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "epsilon" << YAML::Value << f.epsilon;
  out << YAML::Key << "weight_function" << YAML::Value << f.weight_function;
  out << YAML::Key << "w_scale_factor" << YAML::Value << f.w_scale_factor;
  out << YAML::Key << "w_block_size" << YAML::Value << f.w_block_size;
  out << YAML::Key << "w_mixed_precision_prop" << YAML::Value << f.w_mixed_precision_prop;
  out << YAML::Key << "is_w_quantized" << YAML::Value << f.is_w_quantized;
  out << YAML::Key << "activation_function" << YAML::Value << f.activation_function;
  out << YAML::Key << "a_block_size" << YAML::Value << f.a_block_size;
  out << YAML::Key << "a_mixed_precision_prop" << YAML::Value << f.a_mixed_precision_prop;
  out << YAML::Key << "kv_cache_function" << YAML::Value << f.kv_cache_function;
  out << YAML::Key << "kv_block_size" << YAML::Value << f.kv_block_size;
  out << YAML::Key << "kv_mixed_precision_prop" << YAML::Value << f.kv_mixed_precision_prop;
  out << YAML::EndMap;
  out << YAML::Key << "overrides" << YAML::Value << YAML::BeginSeq;
  for (const auto& o : config.overrides) {
    out << YAML::BeginMap;
    if (o.type) out << YAML::Key << "type" << YAML::Value << *o.type;
    if (o.name) out << YAML::Key << "name" << YAML::Value << *o.name;
    if (o.epsilon) out << YAML::Key << "epsilon" << YAML::Value << *o.epsilon;
    if (o.weight_function) out << YAML::Key << "weight_function" << YAML::Value << *o.weight_function;
    if (o.w_scale_factor) out << YAML::Key << "w_scale_factor" << YAML::Value << *o.w_scale_factor;
    if (o.w_block_size) out << YAML::Key << "w_block_size" << YAML::Value << *o.w_block_size;
    if (o.w_mixed_precision_prop) out << YAML::Key << "w_mixed_precision_prop" << YAML::Value << *o.w_mixed_precision_prop;
    if (o.is_w_quantized) out << YAML::Key << "is_w_quantized" << YAML::Value << *o.is_w_quantized;
    if (o.activation_function) out << YAML::Key << "activation_function" << YAML::Value << *o.activation_function;
    if (o.a_block_size) out << YAML::Key << "a_block_size" << YAML::Value << *o.a_block_size;
    if (o.a_mixed_precision_prop) out << YAML::Key << "a_mixed_precision_prop" << YAML::Value << *o.a_mixed_precision_prop;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return out.c_str();
}

}  // namespace edgerazor::config
