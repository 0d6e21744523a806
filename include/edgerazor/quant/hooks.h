// Hook points the model zoo (or a user's own model) calls so that activation (A8) and KV-cache
// (KV8) fake quantization follow whatever inject() attached to the model.
//
//   x = quant::quantize_input(*q_proj, x);        // before every Linear (incl. lm_head)
//   k = quant::quantize_kv(*self_attn, k);        // keys after RoPE, (B, H_kv, T, D)
//   v = quant::quantize_kv(*self_attn, v);        // values,          (B, H_kv, T, D)
//
// Both return the input unchanged when nothing is attached, and otherwise a straight-through
// fake-quantized tensor: the forward value is exactly the quantized grid value, the gradient
// passes unchanged (spec quantization.md §3, §4).
#pragma once

#include <ATen/core/ATen_fwd.h>
#include <ATen/core/Tensor.h>

#include <initializer_list>
#include <vector>

namespace torch::nn {
class Module;
class EmbeddingImpl;
}

namespace edgerazor::quant {

at::Tensor quantize_input(const torch::nn::Module& layer, const at::Tensor& input);
at::Tensor quantize_kv(const torch::nn::Module& attention, const at::Tensor& key_or_value);

// quantize_input for several layers that read the same input (q/k/v, gate/up): layers whose
// activation quantizers have the same spec share one quantized tensor (the values are identical;
// this saves the repeated fake quantization and its saved copy). Returns one tensor per layer.
std::vector<at::Tensor> quantize_shared_input(std::initializer_list<const torch::nn::Module*> layers,
                                              const at::Tensor& input);

// embedding(ids), and when a QuantizedWeightsScope deferred this table's quantization
// (defer_embedding_rows), Q of the gathered rows, straight-through: the values of Q(table)[ids].
at::Tensor embedding_lookup(torch::nn::EmbeddingImpl& embedding, const at::Tensor& ids);

// True when inject() enabled KV quantization on this module.
bool has_kv_quantizer(const torch::nn::Module& attention);

}  // namespace edgerazor::quant
