#include "edgerazor/config/quant_plan.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "edgerazor/config/quant_functions.h"
#include "edgerazor/core/error.h"

namespace edgerazor::config {
namespace {

const char* const kKvCacheKey = "kv_cache";

std::string canonical_type(const std::string& key) {
  // Paper-era spellings of the attention target (spec §0.3, §10.3).
  if (key == "qwen3attention" || key == "llamaattention" || key == "qwen2attention") return kKvCacheKey;
  return key;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Each pattern is a known key, or a regex fullmatched against the known keys (§5.2).
std::set<std::string> resolve_types(const std::vector<std::string>& patterns, const std::vector<std::string>& known,
                                    const std::string& where, const std::string& key) {
  std::set<std::string> out;
  for (size_t i = 0; i < patterns.size(); ++i) {
    const std::string p = canonical_type(patterns[i]);
    if (std::find(known.begin(), known.end(), p) != known.end()) {
      out.insert(p);
      continue;
    }
    std::regex re;
    try {
      re = std::regex(p);
    } catch (const std::regex_error&) {
      throw ConfigError(where + ".select." + key + "[" + std::to_string(i) + "]: '" + patterns[i] +
                        "' is neither a module type nor a valid regex (known: " + join(known) + ")");
    }
    bool any = false;
    for (const auto& k : known) {
      if (std::regex_match(k, re)) {
        out.insert(k);
        any = true;
      }
    }
    if (!any)
      throw ConfigError(where + ".select." + key + "[" + std::to_string(i) + "]: '" + patterns[i] +
                        "' matches no module type (known: " + join(known) + ")");
  }
  return out;
}

// Python re.match semantics: anchored at the start, not at the end.
bool name_matches(const std::string& name, const std::regex& re) {
  return std::regex_search(name, re, std::regex_constants::match_continuous);
}

struct NameMatcher {
  std::vector<std::string> exact;
  std::vector<std::regex> patterns;
  explicit NameMatcher(const std::vector<std::string>& items) : exact(items) {
    for (const auto& item : items) patterns.emplace_back(item);
  }
  bool operator()(const std::string& name) const {
    if (std::find(exact.begin(), exact.end(), name) != exact.end()) return true;
    for (const auto& re : patterns)
      if (name_matches(name, re)) return true;
    return false;
  }
};

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

int64_t row_length(const std::vector<int64_t>& shape) {
  // Conv weights are quantized as (out, in * k...) (§1.9): the row is everything after dim 0.
  int64_t k = 1;
  for (size_t i = 1; i < shape.size(); ++i) k *= shape[i];
  return shape.size() >= 2 ? k : (shape.empty() ? 0 : shape[0]);
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

bool same_weight_settings(const QuantFunctionSettings& a, const QuantFunctionSettings& b) {
  return a.weight_function == b.weight_function && a.resolved_weight_block() == b.resolved_weight_block() &&
         a.resolved_scale_factor() == b.resolved_scale_factor() &&
         a.resolved_weight_prop() == b.resolved_weight_prop() && a.epsilon == b.epsilon;
}

void check_blocks(const ModulePlan& plan, const std::string& where, bool strict) {
  const FunctionInfo* info = find_function(plan.settings.weight_function);
  if (!info) return;  // validate() already named it
  const int64_t k = row_length(plan.weight_shape);
  const bool mixed = info->rule == QuantRule::kMixedTernaryInt4;
  if (info->granularity == Granularity::kBlock && (strict || mixed)) {
    const int64_t b = plan.settings.resolved_weight_block();
    if (k % b != 0)
      throw ConfigError(where + ": module '" + plan.name + "' weight " + shape_string(plan.weight_shape) +
                        ": w_block_size " + std::to_string(b) + " does not divide the row length " +
                        std::to_string(k) + " (function " + info->name + ")" +
                        (mixed ? "; mixed precision needs whole blocks in every row" : "; set strict_blocks: false "
                                 "to let blocks span rows as the reference does"));
  }
  const FunctionInfo* a = plan.settings.activation_function.empty() ? nullptr
                                                                   : find_function(plan.settings.activation_function);
  if (strict && a && a->granularity == Granularity::kBlock && plan.type_key == "linear") {
    const int64_t b = plan.settings.resolved_activation_block();
    if (k % b != 0)
      throw ConfigError(where + ": module '" + plan.name + "' in_features " + std::to_string(k) +
                        ": a_block_size " + std::to_string(b) + " does not divide it");
  }
}

// The KV quantizer splits each head's vector into blocks: they must tile head_dim.
void check_kv_block(const ModuleInfo& m, const QuantFunctionSettings& settings, const std::string& where) {
  const FunctionInfo* kv = find_function(settings.kv_cache_function);
  const int64_t block = settings.resolved_kv_block();
  if (!kv || kv->granularity != Granularity::kBlock || m.head_dim <= 0 || block <= 0 || m.head_dim % block == 0) return;
  throw ConfigError(where + ": function.kv_block_size: " + std::to_string(block) + " does not divide the head dimension " +
                    std::to_string(m.head_dim) + " of module '" + m.name + "' (it must divide it, e.g. " +
                    std::to_string(m.head_dim) + ")");
}

}  // namespace

QuantPlan plan_quantization(const std::vector<ModuleInfo>& modules, const QuantConfig& config,
                            const std::vector<std::string>& known_type_keys, const PlanOptions& options) {
  const std::string where = config.origin.empty() ? std::string("quantization") : config.origin;
  validate(config, where);
  std::vector<std::string> known = known_type_keys;
  if (std::find(known.begin(), known.end(), kKvCacheKey) == known.end()) known.push_back(kKvCacheKey);

  const auto target_types = resolve_types(config.select.target_types, known, where, "target_types");
  const auto exclude_types = resolve_types(config.select.exclude_types, known, where, "exclude_types");
  const NameMatcher target_names(config.select.target_names);
  const NameMatcher exclude_names(config.select.exclude_names);

  std::vector<std::regex> override_names;
  for (const auto& o : config.overrides) override_names.emplace_back(o.name ? *o.name : std::string());
  std::vector<int> override_hits(config.overrides.size(), 0);

  QuantPlan plan;
  plan.kv_settings = config.function;
  const bool kv_on = target_types.count(kKvCacheKey) && !exclude_types.count(kKvCacheKey) &&
                     !config.function.kv_cache_function.empty();
  std::map<const void*, size_t> planned_by_weight;

  for (const auto& m : modules) {
    if (m.is_attention && kv_on && !exclude_names(m.name)) {
      check_kv_block(m, config.function, where);
      plan.kv_modules.push_back(m.name);
    }
    if (m.weight_shape.empty() || m.type_key.empty()) continue;
    const bool excluded = exclude_types.count(m.type_key) || exclude_names(m.name);
    const bool targeted = target_types.count(m.type_key) || target_names(m.name);
    if (excluded || !targeted) continue;

    ModulePlan entry{m.name, m.type_key, m.weight_shape, config.function, false};
    for (size_t i = 0; i < config.overrides.size(); ++i) {
      const auto& o = config.overrides[i];
      const bool type_ok = !o.type || canonical_type(*o.type) == m.type_key;
      const bool name_ok = !o.name || *o.name == m.name || name_matches(m.name, override_names[i]);
      if (type_ok && name_ok && (o.type || o.name)) {
        o.apply_to(entry.settings);
        ++override_hits[i];
      }
    }
    // A8 quantizes the inputs of Linear/Conv layers; an embedding's input is token ids (§4.2).
    if (m.type_key == "embedding") entry.settings.activation_function.clear();
    const std::string at = where + " (module '" + m.name + "')";
    validate(entry.settings, at);
    check_blocks(entry, where, options.strict_blocks && config.strict_blocks);
    if (m.weight_id) {
      const auto tied = planned_by_weight.find(m.weight_id);
      if (tied != planned_by_weight.end()) {
        const ModulePlan& first = plan.weights[tied->second];
        if (!same_weight_settings(first.settings, entry.settings))
          throw ConfigError(where + ": modules '" + first.name + "' and '" + m.name +
                            "' share one (tied) weight but get different weight quantizers ('" +
                            first.settings.weight_function + "' vs '" + entry.settings.weight_function +
                            "'); give them the same settings with an override");
        entry.tied_duplicate = true;
      } else {
        planned_by_weight[m.weight_id] = plan.weights.size();
      }
    }
    plan.weights.push_back(std::move(entry));
  }
  if (!options.allow_unused_overrides) {
    for (size_t i = 0; i < config.overrides.size(); ++i) {
      if (override_hits[i] == 0) {
        const auto& o = config.overrides[i];
        const std::string origin = o.origin.empty() ? where + ".overrides[" + std::to_string(i) + "]" : o.origin;
        throw ConfigError(origin + ": override (type: " + (o.type ? *o.type : "-") + ", name: " +
                          (o.name ? *o.name : "-") + ") matches no quantized module");
      }
    }
  }
  return plan;
}

WeightBits weight_bits(const ModulePlan& plan) {
  const FunctionInfo* info = find_function(plan.settings.weight_function);
  WeightBits bits{16.0, 0.0, 0.0, "unknown"};
  if (!info) return bits;
  const int64_t n = numel_of(plan.weight_shape);
  const int64_t rows = plan.weight_shape.empty() ? 1 : plan.weight_shape[0];
  const int64_t k = row_length(plan.weight_shape);
  int64_t scales = 1;
  switch (info->granularity) {
    case Granularity::kTensor: scales = 1; break;
    case Granularity::kChannel:
    case Granularity::kToken: scales = rows; break;
    case Granularity::kBlock: {
      const int64_t b = plan.settings.resolved_weight_block();
      scales = (n + b - 1) / b;
      break;
    }
  }
  bits.scale_bits = n > 0 ? 16.0 * static_cast<double>(scales) / static_cast<double>(n) : 0.0;
  switch (info->rule) {
    case QuantRule::kTernaryAbsmean:
    case QuantRule::kTernaryAbsmax:
      bits.code_bits = kTernaryBits;
      bits.label = "ternary";
      break;
    case QuantRule::kSymmetricAbsmax:
    case QuantRule::kAsymmetricMax:
      bits.code_bits = info->bits;
      bits.int4_fraction = info->bits == 4 ? 1.0 : 0.0;
      bits.label = "int" + std::to_string(info->bits);
      break;
    case QuantRule::kMixedTernaryInt4:
    case QuantRule::kMixedInt4Int8: {
      const double p = plan.settings.resolved_weight_prop();
      const int64_t b = plan.settings.resolved_weight_block();
      const int64_t blocks_per_row = b > 0 ? k / b : 0;
      const int64_t nb = b > 0 ? n / b : 0;
      double fraction = p;
      const std::string& s = info->strategy;
      if (s == "static_row_wise_sparse") {
        const int64_t r = std::max<int64_t>(1, static_cast<int64_t>(1.0 / p));
        fraction = static_cast<double>((rows + r - 1) / r) / static_cast<double>(rows);
      } else if (s == "static_column_wise" && blocks_per_row > 0) {
        fraction = static_cast<double>(static_cast<int64_t>(static_cast<double>(blocks_per_row) * p)) / blocks_per_row;
      } else if ((s == "static" || s == "dynamic") && nb > 0) {
        fraction = static_cast<double>(static_cast<int64_t>(static_cast<double>(nb) * p)) / nb;
      } else if (s == "static_sparse" && nb > 0) {
        const int64_t per100 = static_cast<int64_t>(100.0 * p);
        int64_t count = (nb / 100) * std::min<int64_t>(per100, 100) + std::min<int64_t>(nb % 100, per100);
        fraction = static_cast<double>(count) / nb;
      }
      bits.int4_fraction = fraction;
      bits.code_bits = mixed_bits_label(fraction);
      char label[64];
      std::snprintf(label, sizeof label, "mixed(%.1f%% int4)", 100.0 * fraction);
      bits.label = label;
      break;
    }
  }
  return bits;
}

CoverageReport make_report(const QuantPlan& plan, int64_t total_params) {
  CoverageReport report;
  report.total_params = total_params;
  for (const auto& w : plan.weights) {
    if (w.tied_duplicate) continue;
    const WeightBits bits = weight_bits(w);
    const FunctionInfo* info = find_function(w.settings.weight_function);
    CoverageReport::Row row;
    row.name = w.name;
    row.type_key = w.type_key;
    row.function = w.settings.weight_function;
    row.label = bits.label;
    row.shape = w.weight_shape;
    row.numel = numel_of(w.weight_shape);
    row.block_size = info && info->granularity == Granularity::kBlock ? w.settings.resolved_weight_block() : 0;
    row.code_bits = bits.code_bits;
    row.scale_bits = bits.scale_bits;
    row.activation_function = w.settings.activation_function;
    report.quantized_params += row.numel;
    report.rows.push_back(std::move(row));
  }
  report.kv_modules = plan.kv_modules;
  if (!plan.kv_modules.empty()) {
    report.kv_function = plan.kv_settings.kv_cache_function;
    report.kv_block_size = plan.kv_settings.resolved_kv_block();
  }
  return report;
}

double CoverageReport::coverage() const {
  return total_params > 0 ? static_cast<double>(quantized_params) / static_cast<double>(total_params) : 0.0;
}

double CoverageReport::average_code_bits() const {
  double bits = 0;
  for (const auto& r : rows) bits += r.code_bits * static_cast<double>(r.numel);
  return quantized_params > 0 ? bits / static_cast<double>(quantized_params) : 0.0;
}

double CoverageReport::average_bits_with_scales() const {
  double bits = 0;
  for (const auto& r : rows) bits += (r.code_bits + r.scale_bits) * static_cast<double>(r.numel);
  return quantized_params > 0 ? bits / static_cast<double>(quantized_params) : 0.0;
}

double CoverageReport::compression_ratio() const {
  double bits = 0;
  for (const auto& r : rows) bits += (r.code_bits + r.scale_bits) * static_cast<double>(r.numel);
  bits += 16.0 * static_cast<double>(total_params - quantized_params);
  return bits > 0 ? 16.0 * static_cast<double>(total_params) / bits : 0.0;
}

std::string CoverageReport::to_text() const {
  std::ostringstream out;
  char line[512];
  std::map<std::string, std::pair<int64_t, int64_t>> by_label;  // label -> (modules, params)
  for (const auto& r : rows) {
    auto& e = by_label[r.label + " " + r.type_key + (r.block_size ? " B=" + std::to_string(r.block_size) : "") +
                       (r.activation_function.empty() ? "" : " +A")];
    e.first += 1;
    e.second += r.numel;
  }
  out << "quantized modules by kind:\n";
  for (const auto& [label, counts] : by_label) {
    std::snprintf(line, sizeof line, "  %-40s %6lld modules %14lld weights\n", label.c_str(),
                  static_cast<long long>(counts.first), static_cast<long long>(counts.second));
    out << line;
  }
  std::snprintf(line, sizeof line,
                "coverage %lld/%lld = %.10f %%; average bits/weight %.4f (%.4f with scales); "
                "compression vs 16-bit %.4fx\n",
                static_cast<long long>(quantized_params), static_cast<long long>(total_params), 100.0 * coverage(),
                average_code_bits(), average_bits_with_scales(), compression_ratio());
  out << line;
  if (!kv_modules.empty())
    out << "KV cache: " << kv_function << " (block " << kv_block_size << ") on " << kv_modules.size()
        << " attention modules\n";
  return out.str();
}

std::string CoverageReport::to_json() const {
  nlohmann::json j;
  j["total_params"] = total_params;
  j["quantized_params"] = quantized_params;
  j["coverage"] = coverage();
  j["average_code_bits"] = average_code_bits();
  j["average_bits_with_scales"] = average_bits_with_scales();
  j["compression_ratio"] = compression_ratio();
  j["kv_function"] = kv_function;
  j["kv_block_size"] = kv_block_size;
  j["kv_modules"] = kv_modules;
  auto& modules = j["modules"] = nlohmann::json::array();
  for (const auto& r : rows) {
    modules.push_back({{"name", r.name}, {"type", r.type_key}, {"function", r.function}, {"label", r.label},
                       {"shape", r.shape}, {"numel", r.numel}, {"block_size", r.block_size},
                       {"code_bits", r.code_bits}, {"scale_bits", r.scale_bits},
                       {"activation_function", r.activation_function}});
  }
  return j.dump();
}

}  // namespace edgerazor::config
