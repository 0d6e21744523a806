// A Hugging Face config.json as a typed, validated model config. Torch-free.
//
// Supported: model_type "llama" (Llama, MobileLLM deep-thin models, tied or untied embeddings),
// "qwen2" (bias on q/k/v), "qwen3" (q_norm/k_norm, head_dim independent of hidden_size).
// Rejected with a ConfigError naming the key: other architectures, rope_scaling types other than
// "default", sliding-window attention, activations other than silu, inconsistent head counts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edgerazor::model {

enum class Architecture { kLlama, kQwen2, kQwen3 };

const char* architecture_name(Architecture arch);  // "llama", "qwen2", "qwen3"

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // C
  int64_t intermediate_size = 0;  // MLP width
  int64_t num_hidden_layers = 0;  // L
  int64_t num_attention_heads = 0;  // H
  int64_t num_key_value_heads = 0;  // H_kv (GQA when < H)
  int64_t head_dim = 0;             // D (hidden_size / H unless given)
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool attention_bias = false;  // bias on q/k/v (qwen2: always)
  bool o_proj_bias = false;     // bias on o_proj (llama/qwen3 attention_bias)
  bool mlp_bias = false;
  bool qk_norm = false;         // qwen3
  bool tie_word_embeddings = false;
  std::string torch_dtype = "float32";  // "float32", "bfloat16", "float16"
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id;

  // The config.json text this came from (unknown keys are kept when saving).
  std::string source_json;
};

// Parses config.json text; source names the file in errors.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source = "config.json");
// Reads and parses a config.json file (or a folder holding one).
ModelConfig load_model_config(const std::string& path);
// The config as config.json text: source_json with every typed field written back.
std::string model_config_to_json(const ModelConfig& config);
// Writes <dir>/config.json (via .tmp + rename).
void save_model_config(const ModelConfig& config, const std::string& dir);

// Basic consistency checks (head counts, positive sizes, max positions within 2^24, weights that
// fit this machine's memory at 2 bytes each); throws ConfigError naming the key.
void validate(const ModelConfig& config, const std::string& source = "config.json");

// Parameters the config describes (embeddings, lm_head unless tied, every layer), computed in
// floating point so that absurd sizes do not wrap.
double parameter_count(const ModelConfig& config);

// Throws ConfigError when parameter_count * bytes_per_parameter exceeds this machine's physical
// memory (RAM + swap), naming the key that makes the model that large, before anything is
// allocated (an allocation of petabytes otherwise ends in std::bad_alloc or worse).
void check_weights_fit_in_memory(const ModelConfig& config, double bytes_per_parameter,
                                 const std::string& source = "config.json");

// The decoder layer a parameter or checkpoint tensor belongs to ("model.layers.3.mlp.up_proj.weight"
// -> 3); -1 for the others (embeddings, final norm, lm_head).
int64_t decoder_layer_of(const std::string& name);

// One checkpoint tensor the config describes.
struct ParameterShape {
  std::string name;            // Hugging Face name ("model.layers.0.self_attn.q_proj.weight")
  std::vector<int64_t> shape;  // PyTorch order
};

// Every checkpoint tensor of the model the config describes, in the order io::checkpoint_tensors
// lists a built model's (module registration order; no lm_head.weight when tied). Lets an export
// stream a checkpoint tensor by tensor without building the model (tests check the two agree).
std::vector<ParameterShape> checkpoint_shapes(const ModelConfig& config);

}  // namespace edgerazor::model
