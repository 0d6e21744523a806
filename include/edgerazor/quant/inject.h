// Config-driven injection of quantizers into any torch::nn model (spec quantization.md §5-§6).
//
//   auto config = config::preset("w1.58a8kv8_embint4_qwen3");
//   config::CoverageReport report = quant::inject(*model, config);
//   std::cout << report.to_text();
//
// Selection, overrides and validation are the torch-free plan (config/quant_plan.h); this file
// describes the torch model to it and attaches WeightQuantizer / StateQuantizer children.
// Injecting again replaces the quantizers attached before.
#pragma once

#include <cstdint>
#include <vector>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/config/quant_plan.h"

namespace torch::nn {
class Module;
}

namespace edgerazor::quant {

struct InjectOptions {
  config::PlanOptions plan;
};

config::CoverageReport inject(torch::nn::Module& model, const config::QuantConfig& config,
                              const InjectOptions& options = {});

// Removes every quantizer inject() attached.
void remove_quantizers(torch::nn::Module& model);

// Names, type keys and weight shapes of every module, as the planner sees them.
std::vector<config::ModuleInfo> describe_modules(const torch::nn::Module& model);

// Parameters counted once each (tied weights once).
int64_t count_parameters(const torch::nn::Module& model);

// The report of what is attached now.
config::CoverageReport coverage_report(const torch::nn::Module& model);

// Post-training quantization for evaluation/generation: inject, switch to eval, and bake Q(w)
// into the weights (A8/KV8 stay active through the hooks). The PTQ baseline QAD is compared to.
config::CoverageReport quantize_for_inference(torch::nn::Module& model, const config::QuantConfig& config,
                                              const InjectOptions& options = {});

}  // namespace edgerazor::quant
