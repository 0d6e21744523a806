#include "edgerazor/config/quant_presets.h"

#include "edgerazor/config/train_config.h"
#include "yaml_util.h"

#include <cctype>
#include <fstream>
#include <map>

#include "edgerazor/config/quant_functions.h"
#include "edgerazor/core/error.h"

namespace edgerazor::config {
namespace {

constexpr const char* kTernary = "weight_quant_uniform_symmetric_clip_per_block_int1_58";
constexpr const char* kInt4 = "weight_quant_uniform_symmetric_absmax_per_block_int4";
constexpr const char* kRowSparse =
    "weight_quant_uniform_symmetric_clip_per_block_mp_int1_58_int4_static_row_wise_sparse";
constexpr const char* kInt8State = "state_quant_uniform_symmetric_absmax_per_block_int8";

struct Blocks {
  int64_t weight, activation, kv;
};

QuantOverride int4_override(const std::string& name_regex) {
  QuantOverride o;
  o.name = name_regex;
  o.weight_function = kInt4;
  o.w_scale_factor = -1;
  o.w_mixed_precision_prop = -1;
  return o;
}

// bits: "1_58" | "1_88" | "2_79" | "4"; the a8kv8 family with the given blocks.
QuantConfig a8kv8(const std::string& bits, const Blocks& blocks, bool embint4, bool exact_paper_names) {
  QuantConfig c;
  c.select.target_types = {"linear", "embedding", "kv_cache"};
  auto& f = c.function;
  f.epsilon = 1e-5;
  if (bits == "4") {
    f.weight_function = kInt4;
  } else if (bits == "1_58") {
    f.weight_function = kTernary;
    f.w_scale_factor = 2.0;
  } else {
    f.weight_function = kRowSparse;
    f.w_scale_factor = 2.0;
    f.w_mixed_precision_prop = bits == "1_88" ? 0.125 : 0.5;
  }
  f.w_block_size = blocks.weight;
  f.activation_function = kInt8State;
  f.a_block_size = blocks.activation;
  f.kv_cache_function = kInt8State;
  f.kv_block_size = blocks.kv;
  if (embint4) {
    // The paper's train.yaml names the modules exactly; the generic presets use ".*" prefixes.
    c.overrides.push_back(int4_override(exact_paper_names ? "model.embed_tokens" : ".*embed_tokens"));
    c.overrides.push_back(int4_override(exact_paper_names ? "lm_head" : ".*lm_head"));
  }
  return c;
}

std::map<std::string, QuantConfig> build_presets() {
  std::map<std::string, QuantConfig> p;
  const Blocks generic_ternary{256, 256, 64}, generic_w4{64, 64, 64}, qwen3{256, 256, 128}, mobilellm{64, 64, 64};
  for (const std::string bits : {"1_58", "1_88", "2_79", "4"}) {
    const Blocks generic = bits == "4" ? generic_w4 : generic_ternary;
    const std::string base = "w" + bits + "a8kv8";
    for (const bool emb : {false, true}) {
      const std::string name = base + (emb ? "_embint4" : "");
      p[name] = a8kv8(bits, generic, emb, false);
      p[name + "_qwen3"] = a8kv8(bits, qwen3, emb, false);
      p[name + "_mobilellm"] = a8kv8(bits, mobilellm, emb, false);
    }
  }
  {  // w4a8: no activation quantization despite the name (reference quirk kept for its users)
    QuantConfig c;
    c.select.target_types = {"linear", "embedding"};
    c.function.weight_function = kInt4;
    c.function.w_block_size = 64;
    p["w4a8"] = c;
  }
  {  // w1_58a8: ternary, no A8 despite the name
    QuantConfig c;
    c.select.target_types = {"linear", "embedding"};
    c.function.weight_function = kTernary;
    c.function.w_scale_factor = 2.0;
    c.function.w_block_size = 256;
    p["w1_58a8"] = c;
  }
  {  // w1_58a8kv16: ternary decoder Linears with A8; embedding and lm_head stay full precision
    QuantConfig c;
    c.select.target_types = {"linear"};
    c.select.exclude_names = {"lm_head"};
    c.function.weight_function = kTernary;
    c.function.w_scale_factor = 2.0;
    c.function.w_block_size = 256;
    c.function.activation_function = kInt8State;
    c.function.a_block_size = 256;
    p["w1_58a8kv16"] = c;
  }
  {  // a8kv8: no weight module is selected, so in effect KV8 only
    QuantConfig c;
    c.select.target_types = {"kv_cache"};
    c.function.activation_function = kInt8State;
    c.function.a_block_size = 256;
    c.function.kv_cache_function = kInt8State;
    c.function.kv_block_size = 64;
    p["a8kv8"] = c;
  }
  // The paper's exact per-model settings (train.yaml of each run, spec §5.6 / §9).
  const std::map<std::string, Blocks> models = {
      {"qwen3-0_6b", qwen3}, {"qwen3-1_7b", qwen3}, {"mobilellm-350m", mobilellm}};
  for (const auto& [model, blocks] : models) {
    for (const std::string bits : {"1_58", "1_88", "2_79", "4"}) {
      p["paper-" + model + "-w" + bits] = a8kv8(bits, blocks, bits != "4", true);
    }
  }
  for (auto& [name, config] : p) config.preset = name;
  return p;
}

const std::map<std::string, QuantConfig>& presets() {
  static const std::map<std::string, QuantConfig> table = build_presets();
  return table;
}

}  // namespace

std::string canonical_preset_name(const std::string& name) {
  std::string out;
  out.reserve(name.size());
  for (size_t i = 0; i < name.size(); ++i) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
    // "1.58" -> "1_58", "0.6b" -> "0_6b": a dot between digits is a decimal point.
    if (c == '.' && i > 0 && i + 1 < name.size() && std::isdigit(static_cast<unsigned char>(name[i - 1])) &&
        std::isdigit(static_cast<unsigned char>(name[i + 1])))
      c = '_';
    out.push_back(c);
  }
  return out;
}

QuantConfig quant_config_from_arg(const std::string& preset_or_path) {
  if (is_preset(preset_or_path)) return preset(preset_or_path);
  std::ifstream probe(preset_or_path);
  if (!probe)
    throw ConfigError("'" + preset_or_path + "' is neither a quantization preset nor a readable config file (presets: " +
                      [] {
                        std::string known;
                        for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
                        return known;
                      }() + ")");
  return load_quant_config_file(preset_or_path);
}

namespace {

// An error in a --set-edited config: line:column of the re-emitted YAML mean nothing to the user,
// so the message names the flag that set the key (or the config and its edits).
ConfigError name_the_flag(const ConfigError& e, const std::string& emitted, const std::string& base,
                          const std::vector<Override>& sets) {
  std::string rest = e.what();
  if (rest.rfind(emitted + ":", 0) == 0) {  // "emitted:L:C: key: message" -> "key: message"
    size_t at = emitted.size() + 1;
    while (at < rest.size() && (std::isdigit(static_cast<unsigned char>(rest[at])) || rest[at] == ':')) ++at;
    rest = rest.substr(std::min(rest.size(), at + (at < rest.size() && rest[at] == ' ' ? 1 : 0)));
  }
  for (auto it = sets.rbegin(); it != sets.rend(); ++it) {
    const std::string& key = it->key;
    if (rest.rfind(key + ":", 0) == 0 || rest.rfind(key + ".", 0) == 0 || rest.rfind(key + "[", 0) == 0)
      return ConfigError("--set " + key + "=" + it->value + ": " + rest);
  }
  return ConfigError(base + " (with its --set edits): " + rest);
}

}  // namespace

QuantConfig quant_config_from_arg(const std::string& preset_or_path, const std::vector<Override>& sets) {
  if (sets.empty()) return quant_config_from_arg(preset_or_path);
  const bool named_preset = is_preset(preset_or_path);
  std::string text = named_preset ? to_yaml(preset(preset_or_path)) : yaml::read_file_text(preset_or_path);
  YAML::Node root = yaml::parse_text(text, preset_or_path);
  // A run config holds the quantization under its own key; edit that part.
  const YAML::Node& lookup = root;  // const: operator[] must not add the key
  YAML::Node section = root.IsMap() && lookup["quantization"] ? root["quantization"] : root;
  std::string origin = preset_or_path + " with --set ";
  std::vector<Override> applied;
  for (Override o : sets) {
    if (o.key.rfind("quantization.", 0) == 0) o.key = o.key.substr(13);
    yaml::apply_override(section, o);
    origin += (applied.empty() ? "" : ", ") + o.key + "=" + o.value;
    applied.push_back(o);
  }
  YAML::Emitter out;
  out << section;
  const std::string emitted = "edited " + preset_or_path;
  try {
    QuantConfig config = parse_quant_config_yaml(out.c_str(), emitted);
    config.origin = origin;  // what later checks (the planner) name
    return config;
  } catch (const ConfigError& e) {
    throw name_the_flag(e, emitted, preset_or_path, applied);
  }
}

bool is_preset(const std::string& name) { return presets().count(canonical_preset_name(name)) > 0; }

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, config] : presets()) names.push_back(name);
  return names;
}

QuantConfig preset(const std::string& name) {
  const auto it = presets().find(canonical_preset_name(name));
  if (it == presets().end()) {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown quantization preset '" + name + "' (known: " + known + ")");
  }
  return it->second;
}

std::vector<PaperRecipe> paper_recipes() {
  std::vector<PaperRecipe> out;
  const auto add = [&](const std::string& model, const std::string& bits, double task, double kld, double mse,
                       const std::string& schedule, double warmup, int bs, int accum, double epochs) {
    PaperRecipe r;
    r.model = model;
    r.bits = bits;
    std::string preset_model = canonical_preset_name(model);
    std::string preset_bits = canonical_preset_name(bits);
    r.preset = "paper-" + preset_model + "-w" + preset_bits;
    r.loss_task_alpha = task;
    r.kld_alpha = kld;
    r.mse_alpha = mse;
    r.lr_schedule = schedule;
    r.warmup_ratio = warmup;
    r.per_device_batch = bs;
    r.accumulation = accum;
    r.gpus = 8;
    // A 4-bit run is capped at 2000 steps whatever the epoch count (spec §9).
    r.epochs = bits == "4" ? 0 : epochs;
    r.max_steps = bits == "4" ? 2000 : 0;
    out.push_back(r);
  };
  for (const std::string bits : {"1.58", "1.88", "2.79", "4"}) {
    const bool four = bits == "4";
    add("qwen3-0.6b", bits, four ? 0.05 : 0.1, 2.0, four ? 0.5 : 0.1, "constant_with_warmup", 0.05, 8, 16, 1);
    add("qwen3-1.7b", bits, four ? 0.05 : 0.1, 2.0, four ? 0.5 : 0.1, "constant_with_warmup", 0.05, 12, 16, 2);
    const bool low = bits == "1.58" || bits == "1.88";
    add("mobilellm-350m", bits, low ? 0.2 : 0.5, low ? 4.0 : 2.0, low ? 1.0 : 0.1, "cosine_with_min_lr", 0.01, 60,
        4, bits == "2.79" ? 4 : 5);
  }
  return out;
}

PaperRecipe paper_recipe(const std::string& model, const std::string& bits) {
  for (const auto& r : paper_recipes()) {
    if (canonical_preset_name(r.model) == canonical_preset_name(model) &&
        canonical_preset_name(r.bits) == canonical_preset_name(bits))
      return r;
  }
  throw ConfigError("no paper recipe for model '" + model + "' at " + bits +
                    " bits (models: qwen3-0.6b, qwen3-1.7b, mobilellm-350m; bits: 1.58, 1.88, 2.79, 4)");
}

}  // namespace edgerazor::config
