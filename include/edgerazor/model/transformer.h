// The decoder-only transformer of the model zoo: Llama / MobileLLM, Qwen2 (q/k/v bias), Qwen3
// (q_norm/k_norm), built from plain torch::nn modules registered under their Hugging Face names,
// so named_parameters() keys are the safetensors keys (model.embed_tokens.weight,
// model.layers.N.self_attn.q_proj.weight, ..., model.norm.weight, lm_head.weight) and the weight
// quantizer injection applies unchanged.
//
// Legend: B batch, T new tokens, S key positions (past + T), C hidden, H query heads,
// H_kv key/value heads, D head dim, F MLP width, V vocab, L layers.
//
// Hooks (spec quantization.md §4): quant::quantize_input() before every Linear (q, k, v, o,
// gate, up, down, lm_head); quant::quantize_kv() on keys after RoPE and on values, (B, H_kv, S, D),
// before they enter the cache. Both also run inside gradient-checkpointed recomputation.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <vector>

#include "edgerazor/model/block_hooks.h"
#include "edgerazor/model/model_config.h"

namespace edgerazor::model {

// Keys and values of every layer for incremental decoding, stored after RoPE and KV8.
struct KVCache {
  std::vector<at::Tensor> keys;    // L x (B, H_kv, S, D)
  std::vector<at::Tensor> values;  // L x (B, H_kv, S, D)
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
  void clear() { keys.clear(); values.clear(); }
};

// What every layer of one forward pass shares.
struct LayerContext {
  at::Tensor cos, sin;   // (B, 1, T, D) rotary tables in the compute dtype
  at::Tensor mask;       // additive (B or 1, 1, T, S) float mask; undefined when is_causal or none needed
  bool is_causal = false;  // plain causal attention over T == S tokens
};

// y = weight * x / sqrt(mean(x^2) + eps), computed in fp32 like Hugging Face.
class RMSNormImpl : public torch::nn::Cloneable<RMSNormImpl> {
 public:
  RMSNormImpl(int64_t dim, double eps);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);
  int64_t dim;
  double eps;
  at::Tensor weight;  // (dim)
};
TORCH_MODULE(RMSNorm);

class AttentionImpl : public torch::nn::Cloneable<AttentionImpl> {
 public:
  explicit AttentionImpl(const ModelConfig& config);
  void reset() override;
  // x: (B, T, C) -> (B, T, C). past_k/past_v: cache slots of this layer (may be null).
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx, at::Tensor* past_k = nullptr,
                     at::Tensor* past_v = nullptr);
  ModelConfig config;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // Qwen3 only (absent otherwise)
};
TORCH_MODULE(Attention);

// SwiGLU: down(silu(gate(x)) * up(x)).
class MLPImpl : public torch::nn::Cloneable<MLPImpl> {
 public:
  explicit MLPImpl(const ModelConfig& config);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);  // (B, T, C) -> (B, T, C)
  ModelConfig config;
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

class DecoderLayerImpl : public torch::nn::Cloneable<DecoderLayerImpl> {
 public:
  explicit DecoderLayerImpl(const ModelConfig& config);
  void reset() override;
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx, at::Tensor* past_k = nullptr,
                     at::Tensor* past_v = nullptr);
  ModelConfig config;
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

struct ForwardOptions {
  at::Tensor attention_mask;  // (B, S) 1 = token, 0 = padding; undefined = every position is a token
  at::Tensor position_ids;    // (B, T); undefined = derived from the mask or the cache length
  KVCache* cache = nullptr;   // incremental decoding: read and extended in place
  bool output_hidden_states = false;
  bool compute_logits = true;  // false: only hidden states (e.g. for chunked losses)
};

struct CausalLMOutput {
  at::Tensor logits;                      // (B, T, V), compute dtype
  std::vector<at::Tensor> hidden_states;  // L+1 x (B, T, C): 0 = embeddings, L = after the final norm
};

// The body: embeddings, L layers, final norm (registered as "model").
class TransformerImpl : public torch::nn::Cloneable<TransformerImpl> {
 public:
  explicit TransformerImpl(const ModelConfig& config);
  void reset() override;
  // Returns the final normed hidden state (B, T, C); appends L+1 states when hidden is given.
  at::Tensor forward(const at::Tensor& input_ids, const ForwardOptions& options,
                     std::vector<at::Tensor>* hidden = nullptr);
  ModelConfig config;
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  bool gradient_checkpointing = false;
  // Sharded parameters (block_hooks.h): called around every decoder layer; null = weights resident.
  std::shared_ptr<BlockParameterHooks> block_hooks;
};
TORCH_MODULE(Transformer);

class CausalLMImpl : public torch::nn::Cloneable<CausalLMImpl> {
 public:
  explicit CausalLMImpl(const ModelConfig& config);
  void reset() override;
  CausalLMOutput forward(const at::Tensor& input_ids /*(B, T) int64*/, const ForwardOptions& options = {});
  // lm_head with its A8 hook: (B, T, C) -> (B, T, V).
  at::Tensor logits_from_hidden(const at::Tensor& hidden);
  // Recompute each layer in backward instead of keeping its activations (training only).
  void set_gradient_checkpointing(bool enabled) { model->gradient_checkpointing = enabled; }
  // Re-ties lm_head.weight to model.embed_tokens.weight (after replacing the embedding tensor).
  void tie_weights();
  // named_parameters() without the tied lm_head.weight duplicate (what a checkpoint stores).
  std::vector<std::pair<std::string, at::Tensor>> unique_named_parameters() const;

  ModelConfig config;
  Transformer model{nullptr};
  torch::nn::Linear lm_head{nullptr};
};
TORCH_MODULE(CausalLM);

}  // namespace edgerazor::model
