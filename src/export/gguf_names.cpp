// The GGUF names table (llama.cpp src/llama-arch.cpp LLM_ARCH_NAMES, LLM_KV_NAMES, tensor names;
// gguf-py constants.py TENSOR_NAMES). Torch-free.
#include "edgerazor/export/gguf_names.h"

#include <regex>
#include <utility>

namespace edgerazor::exporter {
namespace {

struct KeyName {
  GgufArchKey key;
  const char* suffix;
};
constexpr KeyName kArchKeys[] = {
    {GgufArchKey::kContextLength, "context_length"},
    {GgufArchKey::kEmbeddingLength, "embedding_length"},
    {GgufArchKey::kBlockCount, "block_count"},
    {GgufArchKey::kFeedForwardLength, "feed_forward_length"},
    {GgufArchKey::kHeadCount, "attention.head_count"},
    {GgufArchKey::kHeadCountKv, "attention.head_count_kv"},
    {GgufArchKey::kKeyLength, "attention.key_length"},
    {GgufArchKey::kValueLength, "attention.value_length"},
    {GgufArchKey::kRmsEps, "attention.layer_norm_rms_epsilon"},
    {GgufArchKey::kRopeFreqBase, "rope.freq_base"},
    {GgufArchKey::kRopeDimensionCount, "rope.dimension_count"},
    {GgufArchKey::kVocabSize, "vocab_size"},
};

// Per-layer HF suffix -> GGUF suffix.
const std::pair<const char*, const char*> kLayerTensors[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.o_proj.bias", "attn_output.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.gate_proj.bias", "ffn_gate.bias"},
    {"mlp.up_proj.bias", "ffn_up.bias"},
    {"mlp.down_proj.bias", "ffn_down.bias"},
};

}  // namespace

const char* gguf_arch_name(model::Architecture arch) {
  switch (arch) {
    case model::Architecture::kLlama: return "llama";
    case model::Architecture::kQwen2: return "qwen2";
    case model::Architecture::kQwen3: return "qwen3";
  }
  return "llama";
}

std::string gguf_arch_key(GgufArchKey key, model::Architecture arch) {
  for (const auto& k : kArchKeys)
    if (k.key == key) return std::string(gguf_arch_name(arch)) + "." + k.suffix;
  return {};
}

std::optional<std::string> gguf_tensor_name(const std::string& hf_name) {
  if (hf_name == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf_name == "model.norm.weight") return "output_norm.weight";
  if (hf_name == "lm_head.weight") return "output.weight";
  static const std::regex layer(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch m;
  if (!std::regex_match(hf_name, m, layer)) return std::nullopt;
  for (const auto& [hf, gguf] : kLayerTensors)
    if (m[2] == hf) return "blk." + m[1].str() + "." + gguf;
  return std::nullopt;
}

bool needs_qk_permutation(model::Architecture arch) { return arch == model::Architecture::kLlama; }

int64_t qk_permutation_heads(const std::string& hf_name, const model::ModelConfig& config) {
  if (!needs_qk_permutation(config.architecture)) return 0;
  auto ends_with = [&](const std::string& s) {
    return hf_name.size() >= s.size() && hf_name.compare(hf_name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("self_attn.q_proj.weight") || ends_with("self_attn.q_proj.bias")) return config.num_attention_heads;
  if (ends_with("self_attn.k_proj.weight") || ends_with("self_attn.k_proj.bias")) return config.num_key_value_heads;
  return 0;
}

}  // namespace edgerazor::exporter
