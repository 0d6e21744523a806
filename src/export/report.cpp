// Compression report and size estimates from shapes. Torch-free (uses only the planner).
#include "edgerazor/export/report.h"

#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "edgerazor/config/quant_functions.h"
#include "edgerazor/quant/module_types.h"

namespace edgerazor::exporter {
using nlohmann::json;

int64_t ExportReport::total_params() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel;
  return n;
}

double ExportReport::file_ratio() const {
  return file_bytes > 0 ? static_cast<double>(bf16_bytes()) / static_cast<double>(file_bytes) : 0.0;
}

double ExportReport::theoretical_ratio() const { return coverage.compression_ratio(); }

std::map<std::string, std::pair<int64_t, uint64_t>> ExportReport::by_kind() const {
  std::map<std::string, std::pair<int64_t, uint64_t>> out;
  for (const auto& t : tensors) {
    auto& e = out[t.kind + " as " + t.stored_as];
    e.first += t.numel;
    e.second += t.bytes;
  }
  return out;
}

std::string ExportReport::to_text() const {
  std::ostringstream o;
  char line[512];
  o << "export " << format << " -> " << path << "\n";
  if (!source.empty()) o << "  source: " << source << "\n";
  o << "  tensors by kind:\n";
  for (const auto& [kind, v] : by_kind()) {
    std::snprintf(line, sizeof line, "    %-36s %12lld weights %12llu bytes %7.3f bits/weight\n", kind.c_str(),
                  static_cast<long long>(v.first), static_cast<unsigned long long>(v.second),
                  v.first ? 8.0 * static_cast<double>(v.second) / static_cast<double>(v.first) : 0.0);
    o << line;
  }
  std::snprintf(line, sizeof line,
                "  coverage %.4f%% (%lld of %lld weights quantized), average %.3f code bits, %.3f with scales\n",
                100.0 * coverage.coverage(), static_cast<long long>(coverage.quantized_params),
                static_cast<long long>(coverage.total_params), coverage.average_code_bits(),
                coverage.average_bits_with_scales());
  o << line;
  // A file can be larger than bf16 (e.g. an unquantized F32 GGUF): say so rather than "0.5x smaller".
  const double ratio = file_ratio();
  const bool smaller = ratio >= 1.0;
  std::snprintf(line, sizeof line, "  file %llu bytes vs bf16 %llu bytes: %.3fx %s (theoretical, spec 8.2: %.3fx)\n",
                static_cast<unsigned long long>(file_bytes), static_cast<unsigned long long>(bf16_bytes()),
                smaller ? ratio : (ratio > 0 ? 1.0 / ratio : 0.0), smaller ? "smaller" : "larger", theoretical_ratio());
  o << line;
  for (const auto& w : warnings) o << "  warning: " << w << "\n";
  return o.str();
}

std::string ExportReport::to_json() const {
  json j;
  j["format"] = format;
  j["path"] = path;
  j["source"] = source;
  j["file_bytes"] = file_bytes;
  j["bf16_bytes"] = bf16_bytes();
  j["file_ratio"] = file_ratio();
  j["theoretical_ratio"] = theoretical_ratio();
  j["total_params"] = total_params();
  j["quantized_params"] = coverage.quantized_params;
  j["coverage"] = coverage.coverage();
  j["average_code_bits"] = coverage.average_code_bits();
  j["average_bits_with_scales"] = coverage.average_bits_with_scales();
  json kinds = json::object();
  for (const auto& [kind, v] : by_kind())
    kinds[kind] = {{"weights", v.first},
                   {"bytes", v.second},
                   {"bits_per_weight", v.first ? 8.0 * static_cast<double>(v.second) / static_cast<double>(v.first) : 0.0}};
  j["by_kind"] = kinds;
  json ts = json::array();
  for (const auto& t : tensors)
    ts.push_back({{"name", t.name}, {"kind", t.kind}, {"stored_as", t.stored_as}, {"numel", t.numel}, {"bytes", t.bytes}});
  j["tensors"] = ts;
  j["warnings"] = warnings;
  return j.dump(2);
}

std::vector<config::ModuleInfo> describe_model_shapes(const model::ModelConfig& c, int64_t* total_params) {
  std::vector<config::ModuleInfo> out;
  int64_t total = 0;
  static const int kEmbedId = 0;  // identity of the (possibly tied) embedding weight
  static const int kHeadId = 0;
  auto add = [&](const std::string& name, const std::string& type, std::vector<int64_t> shape, const void* id, bool count) {
    config::ModuleInfo m;
    m.name = name;
    m.type_key = type;
    m.weight_shape = shape;
    m.weight_id = id;
    if (count) total += shape[0] * shape[1];
    out.push_back(std::move(m));
  };
  const int64_t C = c.hidden_size, D = c.head_dim, H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int64_t F = c.intermediate_size, V = c.vocab_size;
  add("model.embed_tokens", "embedding", {V, C}, &kEmbedId, true);
  std::vector<std::unique_ptr<int>> ids;  // distinct identities for every other weight
  auto id = [&]() {
    ids.push_back(std::make_unique<int>(0));
    return static_cast<const void*>(ids.back().get());
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    config::ModuleInfo attn;
    attn.name = p + "self_attn";
    attn.is_attention = true;
    attn.head_dim = D;
    out.push_back(attn);
    add(p + "self_attn.q_proj", "linear", {H * D, C}, id(), true);
    add(p + "self_attn.k_proj", "linear", {Hkv * D, C}, id(), true);
    add(p + "self_attn.v_proj", "linear", {Hkv * D, C}, id(), true);
    add(p + "self_attn.o_proj", "linear", {C, H * D}, id(), true);
    add(p + "mlp.gate_proj", "linear", {F, C}, id(), true);
    add(p + "mlp.up_proj", "linear", {F, C}, id(), true);
    add(p + "mlp.down_proj", "linear", {C, F}, id(), true);
    total += 2 * C + (c.qk_norm ? 2 * D : 0);
    if (c.attention_bias) total += H * D + 2 * Hkv * D;
    if (c.o_proj_bias) total += C;
    if (c.mlp_bias) total += 2 * F + C;
  }
  total += C;  // final norm
  add("lm_head", "linear", {V, C}, c.tie_word_embeddings ? static_cast<const void*>(&kEmbedId) : static_cast<const void*>(&kHeadId),
      !c.tie_word_embeddings);
  if (total_params) *total_params = total;
  // The identities above die with this function; the planner only compares them while planning.
  for (auto& m : out)
    if (m.weight_id != &kEmbedId && m.weight_id != &kHeadId) m.weight_id = nullptr;
  return out;
}

SizeEstimate estimate_sizes(const model::ModelConfig& c, const config::QuantConfig& quant) {
  int64_t total = 0;
  const auto modules = describe_model_shapes(c, &total);
  const config::QuantPlan plan = config::plan_quantization(modules, quant, quant::module_type_keys());
  SizeEstimate e;
  e.coverage = config::make_report(plan, total);
  e.bf16_bytes = 2 * static_cast<uint64_t>(total);
  double packed = 0, gguf = 0;
  int64_t quantized = 0;
  for (const auto& w : plan.weights) {
    if (w.tied_duplicate) continue;
    const config::WeightBits bits = config::weight_bits(w);
    const config::FunctionInfo* info = config::find_function(w.settings.weight_function);
    const double n = static_cast<double>(w.weight_shape[0] * w.weight_shape[1]);
    const int64_t k = w.weight_shape[1];
    const int64_t b = w.settings.resolved_weight_block();
    const double groups = std::ceil(n / static_cast<double>(b));
    quantized += static_cast<int64_t>(n);
    const bool ternary = bits.label == "ternary";
    const bool mixed = info && info->rule == config::QuantRule::kMixedTernaryInt4;
    const bool wide = info && info->bits > 4 && !mixed;  // INT5 / INT8 codes
    const double f = bits.int4_fraction;
    packed += ternary ? std::ceil(n / 5) : wide ? n : (1 - f) * n / 5 + f * n / 2;
    packed += 2 * groups + (mixed ? std::ceil(groups / 8) : 0);
    if (ternary && b % 256 == 0 && k % 256 == 0) gguf += n / 256 * 66;
    else if (k % 32 == 0 && (b % 32 == 0 || b % k == 0)) gguf += wide ? n / 32 * 34 : n / 32 * 18;
    else gguf += 2 * n;
  }
  const int64_t rest = total - quantized;
  packed += 2.0 * static_cast<double>(rest);
  gguf += 4.0 * static_cast<double>(rest);  // norms F32 (an unquantized matrix would be F16)
  e.packed_bytes = static_cast<uint64_t>(packed);
  e.gguf_bytes = static_cast<uint64_t>(gguf);
  return e;
}

}  // namespace edgerazor::exporter
