// Decoder-only transformer (Llama / MobileLLM, Qwen2, Qwen3). See the header for the legend.
#include "edgerazor/model/transformer.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <unordered_set>

#include "edgerazor/model/activation_checkpoint.h"
#include "edgerazor/model/attention_core.h"
#include "edgerazor/model/rms_norm.h"
#include "edgerazor/model/swiglu.h"
#include "edgerazor/quant/hooks.h"
#include "edgerazor/quant/module_types.h"

namespace edgerazor::model {
namespace {

#if TORCH_VERSION_MAJOR >= 2
constexpr bool kHasFusedAttention = true;
#else
constexpr bool kHasFusedAttention = false;
#endif

// Lets the tie replace lm_head's registered "weight" by the embedding tensor itself (the member
// is protected; naming it through a derived class is the standard way to reach it).
struct ParameterTable : torch::nn::Module {
  static torch::OrderedDict<std::string, at::Tensor>& of(torch::nn::Module& m) {
    return m.*(&ParameterTable::parameters_);
  }
};

// Registers AttentionImpl with the kv_cache selection key once per process.
void register_attention_once() {
  static const bool registered = [] {
    quant::register_attention_type([](const torch::nn::Module& m) { return m.as<AttentionImpl>() != nullptr; },
                                   [](const torch::nn::Module& m) { return m.as<AttentionImpl>()->config.head_dim; });
    return true;
  }();
  (void)registered;
}

torch::nn::Linear make_linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

// x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1): Hugging Face's (NEOX) layout.
at::Tensor apply_rope(const at::Tensor& x /*(B, h, T, D)*/, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor x1 = x.narrow(-1, 0, half);
  const at::Tensor x2 = x.narrow(-1, half, half);
  return x * cos + at::cat({-x2, x1}, -1) * sin;
}

// (B, H_kv, S, D) -> (B, H, S, D): kv head j serves query heads j*n_rep .. j*n_rep+n_rep-1.
at::Tensor repeat_kv(const at::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const int64_t B = x.size(0), Hkv = x.size(1), S = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, Hkv, n_rep, S, D}).reshape({B, Hkv * n_rep, S, D});
}

at::Tensor causal_mask(int64_t T, int64_t S, const at::TensorOptions& options) {
  // Query i sits at position S - T + i and sees keys 0 .. S - T + i.
  const auto q = at::arange(T, options.dtype(at::kLong)).unsqueeze(1) + (S - T);
  const auto k = at::arange(S, options.dtype(at::kLong)).unsqueeze(0);
  return at::zeros({T, S}, options).masked_fill(k > q, -1e9).view({1, 1, T, S});
}

// True when autograd records ops on any of these tensors: then the recomputing attention and
// SwiGLU functions pay off (inference keeps the plain ops).
bool records_grad(std::initializer_list<at::Tensor> tensors) {
  if (!at::GradMode::is_enabled()) return false;
  for (const auto& t : tensors)
    if (t.requires_grad()) return true;
  return false;
}

// Queries per block of the CPU's causal attention (blocked_causal_attention), used from 2 blocks
// (T >= 256) up. At the Qwen3-0.6B shape (16 heads of 128, T 512, bf16, 2 threads) one layer's
// attention takes 7.7 ms forward / 31 ms forward+backward against libtorch's fused flash kernel's
// 16.9 / 43.8 ms (block 64: 7.2 / 26.8 ms alone, but the whole step ran 0.4 s slower with it);
// the bench step: 9.9-10.9 s -> 9.3-9.7 s. EDGERAZOR_CPU_ATTENTION_BLOCK=0 uses the fused kernel.
int64_t cpu_attention_block() {
  static const int64_t block = [] {
    const char* env = std::getenv("EDGERAZOR_CPU_ATTENTION_BLOCK");
    return env != nullptr ? std::max<int64_t>(0, std::atoll(env)) : int64_t{128};
  }();
  return block;
}

// Attention core: softmax(q k^T / sqrt(D) + mask) v, fused where libtorch has it.
at::Tensor attend(const at::Tensor& q /*(B,H,T,D)*/, const at::Tensor& k /*(B,H,S,D)*/, const at::Tensor& v,
                  const LayerContext& ctx) {
#if TORCH_VERSION_MAJOR >= 2
  const int64_t block = cpu_attention_block();
  if (block > 0 && ctx.is_causal && !ctx.mask.defined() && q.device().is_cpu() && q.size(2) >= 2 * block &&
      q.sizes() == k.sizes())
    return blocked_causal_attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(q.size(-1))), block);
  const c10::optional<at::Tensor> mask = ctx.mask.defined() ? c10::optional<at::Tensor>(ctx.mask) : c10::nullopt;
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, ctx.is_causal);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor mask = ctx.mask;
  if (!mask.defined() && ctx.is_causal) mask = causal_mask(q.size(2), k.size(2), q.options());
  // The recomputing function handles CPU autocast only; GPUs use the fused kernel of libtorch 2.
  return attention_core(q, k, v, mask, scale, /*recompute_in_backward=*/records_grad({q, k, v}) && q.device().is_cpu());
#endif
}

}  // namespace

// ---------------------------------------------------------------------------------------------
RMSNormImpl::RMSNormImpl(int64_t dim_, double eps_) : dim(dim_), eps(eps_) { reset(); }

void RMSNormImpl::reset() { weight = register_parameter("weight", at::ones({dim})); }

at::Tensor RMSNormImpl::forward(const at::Tensor& x) { return rms_norm(x, weight, eps); }

// ---------------------------------------------------------------------------------------------
AttentionImpl::AttentionImpl(const ModelConfig& c) : config(c) {
  register_attention_once();
  reset();
}

void AttentionImpl::reset() {
  const int64_t C = config.hidden_size, D = config.head_dim;
  q_proj = register_module("q_proj", make_linear(C, config.num_attention_heads * D, config.attention_bias));
  k_proj = register_module("k_proj", make_linear(C, config.num_key_value_heads * D, config.attention_bias));
  v_proj = register_module("v_proj", make_linear(C, config.num_key_value_heads * D, config.attention_bias));
  o_proj = register_module("o_proj", make_linear(config.num_attention_heads * D, C, config.o_proj_bias));
  if (config.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(D, config.rms_norm_eps));
    k_norm = register_module("k_norm", RMSNorm(D, config.rms_norm_eps));
  }
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const LayerContext& ctx, at::Tensor* past_k,
                                  at::Tensor* past_v) {
  const int64_t B = x.size(0), T = x.size(1), D = config.head_dim;
  const int64_t H = config.num_attention_heads, Hkv = config.num_key_value_heads;
  const auto inputs = quant::quantize_shared_input({q_proj.get(), k_proj.get(), v_proj.get()}, x);  // one A8
  at::Tensor q = q_proj(inputs[0]).view({B, T, H, D});
  at::Tensor k = k_proj(inputs[1]).view({B, T, Hkv, D});
  at::Tensor v = v_proj(inputs[2]).view({B, T, Hkv, D});
  if (q_norm) {  // Qwen3: per-head RMSNorm before RoPE
    q = q_norm(q);
    k = k_norm(k);
  }
  q = apply_rope(q.transpose(1, 2), ctx.cos, ctx.sin);  // (B, H, T, D)
  k = apply_rope(k.transpose(1, 2), ctx.cos, ctx.sin);  // (B, H_kv, T, D)
  v = v.transpose(1, 2);                                // (B, H_kv, T, D)
  k = quant::quantize_kv(*this, k);                     // KV8 after RoPE, before the cache
  v = quant::quantize_kv(*this, v);
  if (past_k != nullptr && past_v != nullptr) {
    if (past_k->defined()) {
      k = at::cat({*past_k, k}, 2);  // (B, H_kv, S, D)
      v = at::cat({*past_v, v}, 2);
    }
    *past_k = k;
    *past_v = v;
  }
  const at::Tensor out = attend(q, repeat_kv(k, H / Hkv), repeat_kv(v, H / Hkv), ctx)  // (B, H, T, D)
                             .transpose(1, 2)
                             .reshape({B, T, H * D});
  return o_proj(quant::quantize_input(*o_proj, out));
}

// ---------------------------------------------------------------------------------------------
MLPImpl::MLPImpl(const ModelConfig& c) : config(c) { reset(); }

void MLPImpl::reset() {
  const int64_t C = config.hidden_size, F = config.intermediate_size;
  gate_proj = register_module("gate_proj", make_linear(C, F, config.mlp_bias));
  up_proj = register_module("up_proj", make_linear(C, F, config.mlp_bias));
  down_proj = register_module("down_proj", make_linear(F, C, config.mlp_bias));
}

at::Tensor MLPImpl::forward(const at::Tensor& x) {
  const auto inputs = quant::quantize_shared_input({gate_proj.get(), up_proj.get()}, x);  // one A8
  const at::Tensor gate = gate_proj(inputs[0]);  // (B, T, F)
  const at::Tensor up = up_proj(inputs[1]);      // (B, T, F)
  const at::Tensor h = swiglu(gate, up, /*recompute_in_backward=*/records_grad({gate, up}));  // silu(gate) * up
  return down_proj(quant::quantize_input(*down_proj, h));  // (B, T, C)
}

// ---------------------------------------------------------------------------------------------
DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c) : config(c) { reset(); }

void DecoderLayerImpl::reset() {
  self_attn = register_module("self_attn", Attention(config));
  mlp = register_module("mlp", MLP(config));
  input_layernorm = register_module("input_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const LayerContext& ctx, at::Tensor* past_k,
                                     at::Tensor* past_v) {
  const at::Tensor h = x + self_attn(input_layernorm(x), ctx, past_k, past_v);
  return h + mlp(post_attention_layernorm(h));
}

// ---------------------------------------------------------------------------------------------
TransformerImpl::TransformerImpl(const ModelConfig& c) : config(c) { reset(); }

void TransformerImpl::reset() {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(config.vocab_size, config.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) layers->push_back(DecoderLayer(config));
  norm = register_module("norm", RMSNorm(config.hidden_size, config.rms_norm_eps));
}

namespace {

LayerContext build_context(const ModelConfig& config, int64_t B, int64_t T, int64_t past, const ForwardOptions& o,
                           const at::TensorOptions& compute) {
  const int64_t S = past + T, D = config.head_dim;
  const auto device = compute.device();
  at::Tensor positions = o.position_ids;
  if (!positions.defined()) {
    if (o.attention_mask.defined()) {  // left padding: count real tokens
      positions = (o.attention_mask.to(device, at::kLong).cumsum(1) - 1).clamp_min(0).narrow(1, S - T, T);
    } else {
      positions = at::arange(past, S, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(0);
    }
  }
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const at::Tensor inv_freq =
      1.0 / at::pow(config.rope_theta, at::arange(0, D, 2, f32.dtype(at::kLong)).to(at::kFloat) / static_cast<double>(D));
  const at::Tensor freqs = positions.to(device, at::kFloat).unsqueeze(-1) * inv_freq.view({1, 1, -1});  // (B|1, T, D/2)
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  LayerContext ctx;
  ctx.cos = emb.cos().to(compute.dtype()).unsqueeze(1);  // (B|1, 1, T, D)
  ctx.sin = emb.sin().to(compute.dtype()).unsqueeze(1);

  const bool padded = o.attention_mask.defined() && !o.attention_mask.all().item<bool>();
  if (!padded && past == 0 && T > 1 && kHasFusedAttention) {
    ctx.is_causal = true;
  } else if (padded || T > 1) {
    at::Tensor mask = causal_mask(T, S, compute);  // (1, 1, T, S)
    if (padded) {
      const at::Tensor keep = o.attention_mask.to(device, at::kBool).view({B, 1, 1, S});
      mask = mask.masked_fill(keep.logical_not(), -1e9);  // (B, 1, T, S)
    }
    ctx.mask = mask;
  }
  return ctx;
}

}  // namespace

at::Tensor TransformerImpl::forward(const at::Tensor& input_ids, const ForwardOptions& o,
                                    std::vector<at::Tensor>* hidden) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1), L = config.num_hidden_layers;
  KVCache* cache = o.cache;
  if (cache && cache->keys.size() != static_cast<size_t>(L)) {
    cache->keys.assign(L, at::Tensor());
    cache->values.assign(L, at::Tensor());
  }
  const int64_t past = cache ? cache->length() : 0;
  TORCH_CHECK(!o.attention_mask.defined() || o.attention_mask.size(1) == past + T,
              "attention_mask must cover past + new tokens: ", past + T, " columns, got ", o.attention_mask.size(1));

  at::Tensor x = quant::embedding_lookup(*embed_tokens, input_ids);  // (B, T, C)
  const LayerContext ctx = build_context(config, B, T, past, o, x.options());
  if (hidden) hidden->push_back(x);
  const bool recompute = gradient_checkpointing && is_training() && at::GradMode::is_enabled() && !cache;
  BlockParameterHooks* hooks = block_hooks.get();
  for (int64_t i = 0; i < L; ++i) {
    auto layer = layers[i]->as<DecoderLayerImpl>();
    if (recompute) {
      auto holder = std::dynamic_pointer_cast<DecoderLayerImpl>(layers->ptr(i));
      CheckpointBracket before, after;
      if (hooks) {
        std::shared_ptr<BlockParameterHooks> keep = block_hooks;  // alive until backward
        before = [keep, i](bool backward) { keep->acquire(i, backward); };
        after = [keep, i](bool backward) { keep->release(i, backward); };
      }
      x = checkpoint([holder, ctx](const at::Tensor& h) { return holder->forward(h, ctx); }, x, layer->parameters(),
                     std::move(before), std::move(after));
    } else {
      if (hooks) hooks->acquire(i, false);
      x = cache ? layer->forward(x, ctx, &cache->keys[i], &cache->values[i]) : layer->forward(x, ctx);
      // With autograd on, backward still reads what the layer saved: the owner releases it later.
      if (hooks && !at::GradMode::is_enabled()) hooks->release(i, false);
    }
    if (hidden && i + 1 < L) hidden->push_back(x);
  }
  x = norm(x);
  if (hidden) hidden->push_back(x);
  return x;
}

// ---------------------------------------------------------------------------------------------
CausalLMImpl::CausalLMImpl(const ModelConfig& c) : config(c) {
  validate(config);
  check_weights_fit_in_memory(config, 4.0);  // parameters are created in float32
  reset();
}

void CausalLMImpl::reset() {
  model = register_module("model", Transformer(config));
  lm_head = register_module("lm_head", make_linear(config.hidden_size, config.vocab_size, false));
  at::NoGradGuard no_grad;  // Hugging Face's init: N(0, 0.02) for Linear/Embedding, zero biases
  for (auto& p : named_parameters(true)) {
    const std::string& name = p.key();
    if (name.size() >= 7 && name.compare(name.size() - 7, 7, ".weight") == 0 && p.value().dim() == 2)
      p.value().normal_(0.0, 0.02);
    else if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0)
      p.value().zero_();
  }
  if (config.tie_word_embeddings) tie_weights();
}

void CausalLMImpl::tie_weights() {
  ParameterTable::of(*lm_head)["weight"] = model->embed_tokens->weight;
  lm_head->weight = model->embed_tokens->weight;
}

at::Tensor CausalLMImpl::logits_from_hidden(const at::Tensor& hidden) {
  return lm_head(quant::quantize_input(*lm_head, hidden));
}

CausalLMOutput CausalLMImpl::forward(const at::Tensor& input_ids, const ForwardOptions& options) {
  CausalLMOutput out;
  const at::Tensor h = model->forward(input_ids, options, options.output_hidden_states ? &out.hidden_states : nullptr);
  if (options.compute_logits) out.logits = logits_from_hidden(h);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> CausalLMImpl::unique_named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  std::unordered_set<const void*> seen;
  for (const auto& p : named_parameters(true))
    if (seen.insert(p.value().unsafeGetTensorImpl()).second) out.emplace_back(p.key(), p.value());
  return out;
}

}  // namespace edgerazor::model
