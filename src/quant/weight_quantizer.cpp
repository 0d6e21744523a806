#include "edgerazor/quant/weight_quantizer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <torch/nn/modules/embedding.h>

#include <ostream>
#include <unordered_map>
#include <unordered_set>

#include "edgerazor/core/error.h"
#include "edgerazor/quant/ste.h"

namespace edgerazor::quant {

const char* const kWeightQuantizerName = "weight_quantizer";
const char* const kKvQuantizerName = "kv_quantizer";

namespace {

// Conv weights are quantized as (out, in * k...) (spec §1.9); Linear/Embedding are already 2-D.
at::Tensor as_matrix(const at::Tensor& weight) {
  return weight.dim() > 2 ? weight.reshape({weight.size(0), -1}) : weight;
}

template <typename Impl>
const Impl* find_child(const torch::nn::Module& module, const char* name) {
  const auto children = module.named_children();
  const auto* child = children.find(name);
  return child ? (*child)->as<Impl>() : nullptr;
}

}  // namespace

WeightQuantizerImpl::WeightQuantizerImpl(const WeightQuantizerOptions& options_) : options(options_) { reset(); }

void WeightQuantizerImpl::reset() {
  weight = weight_spec(options.settings());
  has_activation_ = !options.settings().activation_function.empty();
  if (has_activation_) activation = activation_spec(options.settings());
}

void WeightQuantizerImpl::pretty_print(std::ostream& stream) const {
  stream << "edgerazor::WeightQuantizer(" << weight.function;
  if (weight.granularity == config::Granularity::kBlock) stream << ", block=" << weight.block_size;
  if (has_activation_) stream << ", input=" << activation.function << " block=" << activation.block_size;
  stream << ")";
}

at::Tensor WeightQuantizerImpl::fake_quantize(const at::Tensor& w) const {
  return quant::fake_quantize(as_matrix(w), weight).reshape(w.sizes());
}

QuantizedTensor WeightQuantizerImpl::quantize(const at::Tensor& w) const { return quant::quantize(as_matrix(w), weight); }

at::Tensor WeightQuantizerImpl::quantize_input(const at::Tensor& input) const {
  if (!has_activation_) return input;
  return fake_quantize_ste(input, activation);
}

StateQuantizerImpl::StateQuantizerImpl(const StateQuantizerOptions& options_) : options(options_) { reset(); }

void StateQuantizerImpl::reset() { spec = kv_spec(options.settings()); }

void StateQuantizerImpl::pretty_print(std::ostream& stream) const {
  stream << "edgerazor::StateQuantizer(" << spec.function << ", block=" << spec.block_size << ")";
}

at::Tensor StateQuantizerImpl::forward(const at::Tensor& state) const {
  if (spec.granularity == config::Granularity::kBlock && state.size(-1) % spec.block_size != 0)
    throw ConfigError("kv_block_size " + std::to_string(spec.block_size) + " does not divide the head dimension " +
                      std::to_string(state.size(-1)));
  return fake_quantize_ste(state, spec);
}

const WeightQuantizerImpl* find_weight_quantizer(const torch::nn::Module& module) {
  return find_child<WeightQuantizerImpl>(module, kWeightQuantizerName);
}

const StateQuantizerImpl* find_kv_quantizer(const torch::nn::Module& module) {
  return find_child<StateQuantizerImpl>(module, kKvQuantizerName);
}

namespace {

// Calls fn(parameter, quantizer) once per distinct quantized tensor.
template <typename Fn>
void for_each_quantized_weight(torch::nn::Module& model, Fn fn) {
  std::unordered_set<const void*> seen;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    torch::nn::Module& module = *item.value();
    const WeightQuantizerImpl* quantizer = find_weight_quantizer(module);
    if (!quantizer) continue;
    auto params = module.named_parameters(/*recurse=*/false);
    for (const auto& name : quantizer->options.parameter_names()) {
      at::Tensor* param = params.find(name);
      if (!param || !param->defined()) continue;
      if (!seen.insert(param->unsafeGetTensorImpl()).second) continue;  // tied: quantized once
      fn(module, *param, *quantizer);
    }
  }
}

// How many modules register each parameter tensor directly (2+ = tied).
std::unordered_map<const void*, int> parameter_owners(torch::nn::Module& model) {
  std::unordered_map<const void*, int> owners;
  for (const auto& module : model.modules(/*include_self=*/true))
    for (const auto& p : module->named_parameters(/*recurse=*/false)) ++owners[p.value().unsafeGetTensorImpl()];
  return owners;
}

}  // namespace

QuantizedWeightsScope::QuantizedWeightsScope(torch::nn::Module& model, QuantizedWeightsScopeOptions options) {
  torch::NoGradGuard no_grad;
  const auto owners = options.defer_embedding_rows ? parameter_owners(model) : std::unordered_map<const void*, int>();
  try {
    for_each_quantized_weight(model, [&](torch::nn::Module& module, at::Tensor& param,
                                         const WeightQuantizerImpl& quantizer) {
      if (!module.is_training() && quantizer.options.settings().is_w_quantized) return;
      if (quantizer.rows_deferred()) return;  // an enclosing scope already handles this table
      // A sharded-away weight (ZeRO-3, distributed/zero.h): its block's own scope quantizes it
      // when the block gathers it.
      if (param.numel() > 0 && param.storage().nbytes() == 0) return;
      if (options.defer_embedding_rows && module.as<torch::nn::EmbeddingImpl>() != nullptr && param.dim() == 2 &&
          owners.at(param.unsafeGetTensorImpl()) == 1 && groups_follow_rows(quantizer.weight, param.size(1))) {
        quantizer.set_rows_deferred(true);
        deferred_.push_back(&quantizer);
        return;
      }
      at::Tensor latent = param.variable_data();  // same storage, own version counter
      at::Tensor quantized = quantizer.fake_quantize(latent);
      param.set_data(quantized);
      saved_.emplace_back(param, latent);
    });
  } catch (...) {
    for (auto& [param, latent] : saved_) param.set_data(latent);
    for (const auto* quantizer : deferred_) quantizer->set_rows_deferred(false);
    throw;
  }
}

QuantizedWeightsScope::~QuantizedWeightsScope() {
  for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) it->first.set_data(it->second);
  for (const auto* quantizer : deferred_) quantizer->set_rows_deferred(false);
}

void apply_quantized_weights(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for_each_quantized_weight(model, [&](torch::nn::Module&, at::Tensor& param, const WeightQuantizerImpl& quantizer) {
    if (quantizer.options.settings().is_w_quantized) return;
    param.copy_(quantizer.fake_quantize(param));
  });
  for (const auto& module : model.modules(/*include_self=*/true)) {
    if (auto* quantizer = module->as<WeightQuantizerImpl>()) quantizer->options.settings().is_w_quantized = true;
  }
}

}  // namespace edgerazor::quant
