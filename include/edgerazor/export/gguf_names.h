// Implements: the one table of GGUF names (cf. llama.cpp src/llama-arch.cpp): architecture names,
// per-architecture metadata keys ("%s.block_count"), and the Hugging Face -> GGUF tensor names
// ("model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"). Torch-free.
#pragma once

#include <optional>
#include <string>

#include "edgerazor/model/model_config.h"

namespace edgerazor::exporter {

enum class GgufArchKey {
  kContextLength,      // UINT32
  kEmbeddingLength,    // UINT32
  kBlockCount,         // UINT32
  kFeedForwardLength,  // UINT32
  kHeadCount,          // UINT32
  kHeadCountKv,        // UINT32
  kKeyLength,          // UINT32
  kValueLength,        // UINT32
  kRmsEps,             // FLOAT32
  kRopeFreqBase,       // FLOAT32
  kRopeDimensionCount, // UINT32
  kVocabSize,          // UINT32
};

// "llama", "qwen2", "qwen3" (llama.cpp LLM_ARCH_NAMES).
const char* gguf_arch_name(model::Architecture arch);
// "<arch>.<key>", e.g. "llama.attention.head_count_kv".
std::string gguf_arch_key(GgufArchKey key, model::Architecture arch);

// The GGUF name of a Hugging Face tensor, nullopt for names llama.cpp has no slot for.
std::optional<std::string> gguf_tensor_name(const std::string& hf_name);

// Whether the llama.cpp graph of this architecture expects the HF q/k rows permuted
// (rotate_half -> interleaved rope): true for llama only.
bool needs_qk_permutation(model::Architecture arch);
// For a tensor name: the head count to permute with (n_head for q_proj, n_kv for k_proj), or 0.
int64_t qk_permutation_heads(const std::string& hf_name, const model::ModelConfig& config);

}  // namespace edgerazor::exporter
