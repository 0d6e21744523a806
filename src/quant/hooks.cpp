#include "edgerazor/quant/hooks.h"

#include "edgerazor/quant/weight_quantizer.h"

namespace edgerazor::quant {

at::Tensor quantize_input(const torch::nn::Module& layer, const at::Tensor& input) {
  const WeightQuantizerImpl* quantizer = find_weight_quantizer(layer);
  return quantizer ? quantizer->quantize_input(input) : input;
}

at::Tensor quantize_kv(const torch::nn::Module& attention, const at::Tensor& key_or_value) {
  const StateQuantizerImpl* quantizer = find_kv_quantizer(attention);
  return quantizer ? quantizer->forward(key_or_value) : key_or_value;
}

bool has_kv_quantizer(const torch::nn::Module& attention) { return find_kv_quantizer(attention) != nullptr; }

}  // namespace edgerazor::quant
