// config.json -> ModelConfig and back. Torch-free.
#include "edgerazor/model/model_config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iomanip>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/sysinfo.h>

#include "edgerazor/core/error.h"

namespace edgerazor::model {
namespace fs = std::filesystem;
using nlohmann::json;

const char* architecture_name(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama: return "llama";
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kQwen3: return "qwen3";
  }
  return "?";
}

namespace {

// Typed field access with errors naming the key.
class Reader {
 public:
  Reader(const json& j, const std::string& source) : j_(j), source_(source) {}

  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    throw ConfigError(source_, 0, 0, key, message);
  }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  int64_t integer(const char* key, std::optional<int64_t> fallback = std::nullopt) const {
    if (!has(key)) {
      if (fallback) return *fallback;
      fail(key, "required key is missing");
    }
    const json& v = j_[key];
    if (!v.is_number_integer()) fail(key, "expected an integer, got " + v.dump());
    return v.get<int64_t>();
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_[key];
    if (!v.is_number()) fail(key, "expected a number, got " + v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_[key];
    if (!v.is_boolean()) fail(key, "expected true or false, got " + v.dump());
    return v.get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_[key];
    if (!v.is_string()) fail(key, "expected a string, got " + v.dump());
    return v.get<std::string>();
  }

 private:
  const json& j_;
  std::string source_;
};

void check_rope_scaling(const Reader& r, const json& j) {
  // Accepts rope_scaling (classic) and rope_parameters (newer transformers) without scaling.
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!r.has(key)) continue;
    const json& v = j[key];
    if (!v.is_object()) r.fail(key, "expected an object or null, got " + v.dump());
    std::string type = "default";
    if (v.contains("rope_type") && v["rope_type"].is_string()) type = v["rope_type"].get<std::string>();
    else if (v.contains("type") && v["type"].is_string()) type = v["type"].get<std::string>();
    if (type != "default")
      r.fail(key, "rope scaling type '" + type + "' is not supported (only unscaled RoPE)");
  }
}

}  // namespace

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    // Turn the byte position into line:column.
    int line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < json_text.size(); ++i) {
      if (json_text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw ConfigError(source, line, column, "", std::string("not valid JSON: ") + e.what());
  } catch (const json::out_of_range& e) {  // a number too large for a double
    throw ConfigError(source, 0, 0, "", std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ConfigError(source, 0, 0, "", "config.json must be a JSON object");
  const Reader r(j, source);
  ModelConfig c;
  c.source_json = json_text;

  const std::string model_type = r.string("model_type", "");
  if (model_type == "llama" || model_type == "mobilellm") {
    c.architecture = Architecture::kLlama;
  } else if (model_type == "qwen2") {
    c.architecture = Architecture::kQwen2;
  } else if (model_type == "qwen3") {
    c.architecture = Architecture::kQwen3;
  } else if (model_type.empty()) {
    r.fail("model_type", "required key is missing (expected llama, qwen2 or qwen3)");
  } else {
    r.fail("model_type", "unsupported architecture '" + model_type + "' (supported: llama, qwen2, qwen3)");
  }

  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("hidden_size");
  c.intermediate_size = r.integer("intermediate_size");
  c.num_hidden_layers = r.integer("num_hidden_layers");
  c.num_attention_heads = r.integer("num_attention_heads");
  c.num_key_value_heads = r.integer("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads <= 0) r.fail("num_attention_heads", "must be positive");
  c.head_dim = r.integer("head_dim", c.hidden_size / c.num_attention_heads);
  c.max_position_embeddings = r.integer("max_position_embeddings", 2048);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.rope_theta = r.number("rope_theta", 10000.0);
  if (r.has("rope_parameters") && j["rope_parameters"].is_object() && j["rope_parameters"].contains("rope_theta")) {
    const json& t = j["rope_parameters"]["rope_theta"];
    if (!t.is_number()) r.fail("rope_parameters.rope_theta", "expected a number, got " + t.dump());
    c.rope_theta = t.get<double>();
  }
  check_rope_scaling(r, j);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.torch_dtype = r.string("torch_dtype", r.string("dtype", "float32"));
  if (c.torch_dtype != "float32" && c.torch_dtype != "bfloat16" && c.torch_dtype != "float16")
    r.fail("torch_dtype", "unsupported dtype '" + c.torch_dtype + "' (float32, bfloat16 or float16)");

  const std::string act = r.string("hidden_act", "silu");
  if (act != "silu" && act != "swish") r.fail("hidden_act", "unsupported activation '" + act + "' (only silu)");
  if (r.boolean("use_sliding_window", false))
    r.fail("use_sliding_window", "sliding-window attention is not supported");

  switch (c.architecture) {
    case Architecture::kLlama:
      c.attention_bias = c.o_proj_bias = r.boolean("attention_bias", false);
      c.mlp_bias = r.boolean("mlp_bias", false);
      break;
    case Architecture::kQwen2:  // Qwen2Attention: bias on q/k/v, none on o_proj or the MLP
      c.attention_bias = true;
      break;
    case Architecture::kQwen3:
      c.attention_bias = c.o_proj_bias = r.boolean("attention_bias", false);
      c.qk_norm = true;
      break;
  }

  if (r.has("bos_token_id")) c.bos_token_id = r.integer("bos_token_id");
  if (r.has("pad_token_id")) c.pad_token_id = r.integer("pad_token_id");
  if (r.has("eos_token_id")) {
    const json& e = j["eos_token_id"];
    if (e.is_number_integer()) {
      c.eos_token_ids.push_back(e.get<int64_t>());
    } else if (e.is_array()) {
      for (const auto& x : e) {
        if (!x.is_number_integer()) r.fail("eos_token_id", "expected an integer or a list of integers");
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else {
      r.fail("eos_token_id", "expected an integer or a list of integers, got " + e.dump());
    }
  }
  validate(c, source);
  return c;
}

namespace {

constexpr int64_t kMaxPositions = int64_t{1} << 24;

std::string gib(double bytes) {
  std::ostringstream s;
  s.precision(bytes < 1e11 ? 1 : 2);
  if (bytes < 1e11) s << std::fixed << bytes / double(1 << 30) << " GiB";
  else s << std::scientific << bytes << " bytes";
  return s.str();
}

// One term of the parameter count and the config keys whose product it is.
struct ParameterTerm {
  double count;
  std::vector<std::pair<const char*, int64_t>> factors;
};

std::vector<ParameterTerm> parameter_terms(const ModelConfig& c) {
  const double L = double(c.num_hidden_layers), C = double(c.hidden_size), V = double(c.vocab_size);
  const double qkv = double(c.num_attention_heads + 2 * c.num_key_value_heads) * double(c.head_dim);
  const double o = double(c.num_attention_heads) * double(c.head_dim);
  std::vector<ParameterTerm> terms;
  terms.push_back({V * C * (c.tie_word_embeddings ? 1 : 2), {{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size}}});
  terms.push_back({L * C * (qkv + o),
                   {{"num_hidden_layers", c.num_hidden_layers}, {"head_dim", c.head_dim},
                    {"num_attention_heads", c.num_attention_heads}, {"hidden_size", c.hidden_size}}});
  terms.push_back({L * 3 * C * double(c.intermediate_size),
                   {{"num_hidden_layers", c.num_hidden_layers}, {"intermediate_size", c.intermediate_size},
                    {"hidden_size", c.hidden_size}}});
  terms.push_back({L * (2 * C + qkv) + C, {{"num_hidden_layers", c.num_hidden_layers}}});  // norms, biases
  return terms;
}

double physical_memory_bytes() {
  struct sysinfo info {};
  if (sysinfo(&info) != 0) return 0;
  return (double(info.totalram) + double(info.totalswap)) * double(info.mem_unit);
}

}  // namespace

double parameter_count(const ModelConfig& c) {
  double n = 0;
  for (const auto& t : parameter_terms(c)) n += t.count;
  return n;
}

int64_t decoder_layer_of(const std::string& name) {
  static const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() || !std::isdigit(static_cast<unsigned char>(name[prefix.size()])))
    return -1;
  return std::stoll(name.substr(prefix.size()));
}

std::vector<ParameterShape> checkpoint_shapes(const ModelConfig& c) {
  const int64_t C = c.hidden_size, D = c.head_dim, F = c.intermediate_size;
  const int64_t q_rows = c.num_attention_heads * D, kv_rows = c.num_key_value_heads * D;
  std::vector<ParameterShape> out;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) { out.push_back({name, std::move(shape)}); };
  auto linear = [&](const std::string& name, int64_t in, int64_t rows, bool bias) {
    add(name + ".weight", {rows, in});
    if (bias) add(name + ".bias", {rows});
  };
  add("model.embed_tokens.weight", {c.vocab_size, C});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    linear(p + "self_attn.q_proj", C, q_rows, c.attention_bias);
    linear(p + "self_attn.k_proj", C, kv_rows, c.attention_bias);
    linear(p + "self_attn.v_proj", C, kv_rows, c.attention_bias);
    linear(p + "self_attn.o_proj", q_rows, C, c.o_proj_bias);
    if (c.qk_norm) {
      add(p + "self_attn.q_norm.weight", {D});
      add(p + "self_attn.k_norm.weight", {D});
    }
    linear(p + "mlp.gate_proj", C, F, c.mlp_bias);
    linear(p + "mlp.up_proj", C, F, c.mlp_bias);
    linear(p + "mlp.down_proj", F, C, c.mlp_bias);
    add(p + "input_layernorm.weight", {C});
    add(p + "post_attention_layernorm.weight", {C});
  }
  add("model.norm.weight", {C});
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, C});
  return out;
}

void check_weights_fit_in_memory(const ModelConfig& c, double bytes_per_parameter, const std::string& source) {
  const double memory = physical_memory_bytes();
  const double needed = parameter_count(c) * bytes_per_parameter;
  if (memory <= 0 || needed <= memory) return;
  // Blame the largest factor of the largest term: the key whose value makes the model this big.
  const auto terms = parameter_terms(c);
  const auto& term = *std::max_element(terms.begin(), terms.end(),
                                       [](const auto& a, const auto& b) { return a.count < b.count; });
  const auto& key = *std::max_element(term.factors.begin(), term.factors.end(),
                                      [](const auto& a, const auto& b) { return a.second < b.second; });
  std::ostringstream msg;
  msg << key.second << " makes a model of " << std::setprecision(3) << parameter_count(c)
      << " parameters, whose weights alone need " << gib(needed) << " at " << bytes_per_parameter
      << " bytes each: more than this machine's memory (" << gib(memory) << ")";
  throw ConfigError(source, 0, 0, key.first, msg.str());
}

void validate(const ModelConfig& c, const std::string& source) {
  auto fail = [&](const char* key, const std::string& msg) { throw ConfigError(source, 0, 0, key, msg); };
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) fail(key, "must be positive, got " + std::to_string(v));
  };
  positive("vocab_size", c.vocab_size);
  positive("hidden_size", c.hidden_size);
  positive("intermediate_size", c.intermediate_size);
  positive("num_hidden_layers", c.num_hidden_layers);
  positive("num_attention_heads", c.num_attention_heads);
  positive("num_key_value_heads", c.num_key_value_heads);
  positive("head_dim", c.head_dim);
  if (c.head_dim % 2 != 0) fail("head_dim", "must be even for RoPE, got " + std::to_string(c.head_dim));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail("num_key_value_heads", std::to_string(c.num_key_value_heads) + " does not divide num_attention_heads " +
                                    std::to_string(c.num_attention_heads));
  if (!(c.rms_norm_eps > 0)) fail("rms_norm_eps", "must be positive");
  if (!(c.rope_theta > 0)) fail("rope_theta", "must be positive");
  positive("max_position_embeddings", c.max_position_embeddings);
  if (c.max_position_embeddings > kMaxPositions)
    fail("max_position_embeddings", std::to_string(c.max_position_embeddings) + " is beyond the " +
                                        std::to_string(kMaxPositions) + " positions supported");
  check_weights_fit_in_memory(c, 2.0, source);
  for (int64_t e : c.eos_token_ids)
    if (e < 0 || e >= c.vocab_size) fail("eos_token_id", std::to_string(e) + " is outside the vocabulary");
  if (c.bos_token_id && (*c.bos_token_id < 0 || *c.bos_token_id >= c.vocab_size))
    fail("bos_token_id", std::to_string(*c.bos_token_id) + " is outside the vocabulary");
}

ModelConfig load_model_config(const std::string& path_in) {
  fs::path path(path_in);
  if (fs::is_directory(path)) path /= "config.json";
  std::ifstream in(path);
  if (!in) throw ConfigError(path.string(), 0, 0, "", "cannot open config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_model_config(ss.str(), path.string());
}

std::string model_config_to_json(const ModelConfig& c) {
  json j = json::object();
  if (!c.source_json.empty()) {
    try {
      j = json::parse(c.source_json);
    } catch (const json::parse_error&) {
      j = json::object();
    }
  }
  static const char* kArchClass[] = {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
  j["model_type"] = architecture_name(c.architecture);
  if (!j.contains("architectures")) j["architectures"] = {kArchClass[static_cast<int>(c.architecture)]};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = c.torch_dtype;
  j["hidden_act"] = "silu";
  if (c.architecture != Architecture::kQwen2) j["attention_bias"] = c.o_proj_bias;
  if (c.architecture == Architecture::kLlama) j["mlp_bias"] = c.mlp_bias;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  return j.dump(2) + "\n";
}

void save_model_config(const ModelConfig& c, const std::string& dir) {
  fs::create_directories(dir);
  const fs::path path = fs::path(dir) / "config.json";
  const std::string tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << model_config_to_json(c);
    if (!out.flush()) throw ConfigError(tmp, 0, 0, "", "write failed");
  }
  fs::rename(tmp, path);
}

}  // namespace edgerazor::model
