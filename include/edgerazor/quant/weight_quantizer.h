// Quantization-aware training on unmodified torch::nn models (DESIGN.md "Weight QAT without
// replacing modules").
//
// inject() registers a WeightQuantizer child named "weight_quantizer" on every selected module
// that has a weight (Linear, Embedding, Conv, a user's registered type), and a StateQuantizer
// named "kv_quantizer" on selected attention modules. Then, per training step:
//
//   {
//     quant::QuantizedWeightsScope quantized(model);   // params now hold Q(latent)
//     auto loss = objective(model->forward(x));
//     loss.backward();                                  // grads w.r.t. Q(w) land in param.grad (STE)
//   }                                                   // latent weights restored
//   optimizer.step();                                   // updates the latent fp32 weights
//
// The scope must cover backward as well as forward: autograd reads the (quantized) weights it
// saved. Tied weights (one tensor in two modules) are quantized once. Weights whose storage is
// released (sharded away by ZeRO-3) are skipped: the scope their block opens when it gathers them
// quantizes them. In eval mode a module whose
// settings say is_w_quantized keeps its stored weight (it already holds fake-quant values).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <vector>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/quant/functions.h"

namespace edgerazor::quant {

extern const char* const kWeightQuantizerName;  // "weight_quantizer"
extern const char* const kKvQuantizerName;      // "kv_quantizer"

struct WeightQuantizerOptions {
  WeightQuantizerOptions(config::QuantFunctionSettings settings, std::vector<std::string> parameter_names = {"weight"})
      : settings_(std::move(settings)), parameter_names_(std::move(parameter_names)) {}
  TORCH_ARG(config::QuantFunctionSettings, settings);
  TORCH_ARG(std::vector<std::string>, parameter_names);  // parent parameters it quantizes
};

class WeightQuantizerImpl : public torch::nn::Cloneable<WeightQuantizerImpl> {
 public:
  explicit WeightQuantizerImpl(const WeightQuantizerOptions& options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  // Q(w) for one of the parent's weights (flattened to 2-D for conv weights, §1.9).
  at::Tensor fake_quantize(const at::Tensor& weight) const;
  QuantizedTensor quantize(const at::Tensor& weight) const;
  // A8 on the parent's input, straight-through; identity when no activation function is set.
  at::Tensor quantize_input(const at::Tensor& input) const;
  bool has_activation_quantizer() const { return has_activation_; }

  // True while a QuantizedWeightsScope with defer_embedding_rows leaves this (Embedding) table
  // latent: lookups through quant::embedding_lookup quantize the gathered rows instead.
  bool rows_deferred() const { return rows_deferred_; }
  void set_rows_deferred(bool deferred) const { rows_deferred_ = deferred; }

  WeightQuantizerOptions options;
  QuantSpec weight;
  QuantSpec activation;

 private:
  bool has_activation_ = false;
  mutable bool rows_deferred_ = false;
};
TORCH_MODULE(WeightQuantizer);

struct StateQuantizerOptions {
  explicit StateQuantizerOptions(config::QuantFunctionSettings settings) : settings_(std::move(settings)) {}
  TORCH_ARG(config::QuantFunctionSettings, settings);
};

// KV8: fake quantization of keys/values (B, H_kv, T, D), blocks along D (§4.3).
class StateQuantizerImpl : public torch::nn::Cloneable<StateQuantizerImpl> {
 public:
  explicit StateQuantizerImpl(const StateQuantizerOptions& options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& state) const;

  StateQuantizerOptions options;
  QuantSpec spec;
};
TORCH_MODULE(StateQuantizer);

struct QuantizedWeightsScopeOptions {
  // Untied Embedding tables whose scale groups lie inside rows (groups_follow_rows) stay latent;
  // the model must look them up through quant::embedding_lookup (the model zoo does), which
  // quantizes only the gathered rows: the same values as rows of Q(table), without a quantized
  // copy of the whole V x C table (-62.5 MiB fp32 at V 32000, C 512). Off by default, because a
  // model that calls its Embedding directly would see latent rows.
  bool defer_embedding_rows = false;
};

// RAII: swaps every quantized parameter's data for Q(latent) and restores the latent data when it
// ends. Gradients accumulate into the original parameters (their .grad), i.e. the identity STE.
class QuantizedWeightsScope {
 public:
  explicit QuantizedWeightsScope(torch::nn::Module& model, QuantizedWeightsScopeOptions options = {});
  ~QuantizedWeightsScope();
  QuantizedWeightsScope(const QuantizedWeightsScope&) = delete;
  QuantizedWeightsScope& operator=(const QuantizedWeightsScope&) = delete;

  // Number of distinct tensors swapped (tied weights count once).
  size_t swapped() const { return saved_.size(); }

 private:
  std::vector<std::pair<at::Tensor, at::Tensor>> saved_;  // (parameter, its latent data)
  std::vector<const WeightQuantizerImpl*> deferred_;       // embedding tables left latent
};

// Writes Q(w) into the weights for good (e.g. before an HF fake-quant export) and marks the
// quantizers is_w_quantized, so eval keeps them as they are. Tied weights are written once.
void apply_quantized_weights(torch::nn::Module& model);

// The quantizer attached to a module, or nullptr.
const WeightQuantizerImpl* find_weight_quantizer(const torch::nn::Module& module);
const StateQuantizerImpl* find_kv_quantizer(const torch::nn::Module& module);

}  // namespace edgerazor::quant
