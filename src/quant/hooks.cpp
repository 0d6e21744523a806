#include "edgerazor/quant/hooks.h"

#include <torch/nn/modules/embedding.h>

#include "edgerazor/quant/ste.h"
#include "edgerazor/quant/weight_quantizer.h"

namespace edgerazor::quant {

at::Tensor quantize_input(const torch::nn::Module& layer, const at::Tensor& input) {
  const WeightQuantizerImpl* quantizer = find_weight_quantizer(layer);
  return quantizer ? quantizer->quantize_input(input) : input;
}

std::vector<at::Tensor> quantize_shared_input(std::initializer_list<const torch::nn::Module*> layers,
                                              const at::Tensor& input) {
  std::vector<at::Tensor> out;
  std::vector<const QuantSpec*> specs;  // of the tensors in `out`, null = unquantized
  for (const torch::nn::Module* layer : layers) {
    const WeightQuantizerImpl* quantizer = find_weight_quantizer(*layer);
    const QuantSpec* spec = quantizer && quantizer->has_activation_quantizer() ? &quantizer->activation : nullptr;
    at::Tensor shared;
    for (size_t i = 0; i < out.size() && !shared.defined(); ++i)
      if (spec == nullptr ? specs[i] == nullptr : specs[i] != nullptr && *specs[i] == *spec) shared = out[i];
    out.push_back(shared.defined() ? shared : (spec ? quantizer->quantize_input(input) : input));
    specs.push_back(spec);
  }
  return out;
}

at::Tensor embedding_lookup(torch::nn::EmbeddingImpl& embedding, const at::Tensor& ids) {
  const at::Tensor rows = embedding.forward(ids);  // (..., C)
  const WeightQuantizerImpl* quantizer = find_weight_quantizer(embedding);
  if (quantizer == nullptr || !quantizer->rows_deferred()) return rows;
  return fake_quantize_ste(rows, quantizer->weight);  // groups lie inside rows: Q(table)[ids]
}

at::Tensor quantize_kv(const torch::nn::Module& attention, const at::Tensor& key_or_value) {
  const StateQuantizerImpl* quantizer = find_kv_quantizer(attention);
  return quantizer ? quantizer->forward(key_or_value) : key_or_value;
}

bool has_kv_quantizer(const torch::nn::Module& attention) { return find_kv_quantizer(attention) != nullptr; }

}  // namespace edgerazor::quant
