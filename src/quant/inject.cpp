#include "edgerazor/quant/inject.h"

#include <torch/nn/module.h>

#include <unordered_set>

#include "edgerazor/quant/module_types.h"
#include "edgerazor/quant/weight_quantizer.h"

namespace edgerazor::quant {
namespace {

// The parameters a module's quantizer covers: "weight", or nn::MultiheadAttention's packed
// in_proj_weight (or its separate q/k/v weights when the dims differ, §1.9).
std::vector<std::string> quantizable_parameters(const torch::nn::Module& module, const std::string& type_key) {
  const auto params = module.named_parameters(/*recurse=*/false);
  if (type_key == "multiheadattention") {
    const auto* packed = params.find("in_proj_weight");
    if (packed && packed->defined()) return {"in_proj_weight"};
    return {"q_proj_weight", "k_proj_weight", "v_proj_weight"};
  }
  const auto* weight = params.find("weight");
  if (weight && weight->defined()) return {"weight"};
  return {};
}

std::unordered_map<std::string, std::shared_ptr<torch::nn::Module>> modules_by_name(torch::nn::Module& model) {
  std::unordered_map<std::string, std::shared_ptr<torch::nn::Module>> out;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) out[item.key()] = item.value();
  return out;
}

}  // namespace

std::vector<config::ModuleInfo> describe_modules(const torch::nn::Module& model) {
  std::vector<config::ModuleInfo> out;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const torch::nn::Module& module = *item.value();
    if (module.as<WeightQuantizerImpl>() || module.as<StateQuantizerImpl>()) continue;
    config::ModuleInfo info;
    info.name = item.key();
    info.type_key = module_type_key(module);
    info.is_attention = is_attention(module);
    if (info.is_attention) info.head_dim = attention_head_dim(module);
    const auto names = quantizable_parameters(module, info.type_key);
    if (!names.empty() && !info.type_key.empty()) {
      const auto params = module.named_parameters(/*recurse=*/false);
      const at::Tensor* weight = params.find(names.front());
      if (weight && weight->defined()) {
        info.weight_shape.assign(weight->sizes().begin(), weight->sizes().end());
        info.weight_id = weight->unsafeGetTensorImpl();
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

int64_t count_parameters(const torch::nn::Module& model) {
  std::unordered_set<const void*> seen;
  int64_t total = 0;
  for (const auto& p : model.parameters(/*recurse=*/true)) {
    if (seen.insert(p.unsafeGetTensorImpl()).second) total += p.numel();
  }
  return total;
}

void remove_quantizers(torch::nn::Module& model) {
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    torch::nn::Module& module = *item.value();
    const auto children = module.named_children();
    if (children.contains(kWeightQuantizerName)) module.unregister_module(kWeightQuantizerName);
    if (children.contains(kKvQuantizerName)) module.unregister_module(kKvQuantizerName);
  }
}

config::CoverageReport inject(torch::nn::Module& model, const config::QuantConfig& config,
                              const InjectOptions& options) {
  remove_quantizers(model);
  const auto modules = describe_modules(model);
  const config::QuantPlan plan = config::plan_quantization(modules, config, module_type_keys(), options.plan);
  auto by_name = modules_by_name(model);
  for (const auto& entry : plan.weights) {
    torch::nn::Module& module = *by_name.at(entry.name);
    module.register_module(kWeightQuantizerName,
                           WeightQuantizer(WeightQuantizerOptions(entry.settings,
                                                                  quantizable_parameters(module, entry.type_key))));
  }
  for (const auto& name : plan.kv_modules) {
    by_name.at(name)->register_module(kKvQuantizerName, StateQuantizer(StateQuantizerOptions(plan.kv_settings)));
  }
  return config::make_report(plan, count_parameters(model));
}

config::CoverageReport coverage_report(const torch::nn::Module& model) {
  config::QuantPlan plan;
  std::unordered_set<const void*> seen;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const torch::nn::Module& module = *item.value();
    if (const WeightQuantizerImpl* q = find_weight_quantizer(module)) {
      const auto params = module.named_parameters(/*recurse=*/false);
      const at::Tensor* weight = params.find(q->options.parameter_names().front());
      if (!weight || !weight->defined()) continue;
      config::ModulePlan entry{item.key(), module_type_key(module),
                               std::vector<int64_t>(weight->sizes().begin(), weight->sizes().end()),
                               q->options.settings(), !seen.insert(weight->unsafeGetTensorImpl()).second};
      plan.weights.push_back(std::move(entry));
    }
    if (const StateQuantizerImpl* kv = find_kv_quantizer(module)) {
      plan.kv_modules.push_back(item.key());
      plan.kv_settings = kv->options.settings();
    }
  }
  return config::make_report(plan, count_parameters(model));
}

config::CoverageReport quantize_for_inference(torch::nn::Module& model, const config::QuantConfig& config,
                                              const InjectOptions& options) {
  config::CoverageReport report = inject(model, config, options);
  model.eval();
  apply_quantized_weights(model);
  return report;
}

}  // namespace edgerazor::quant
