// Implements: check_quantization_against_model (see edgerazor/train/preflight.h).
#include "edgerazor/train/preflight.h"

#include <filesystem>

#include "edgerazor/config/quant_functions.h"
#include "edgerazor/config/quant_plan.h"
#include "edgerazor/core/error.h"
#include "edgerazor/export/report.h"
#include "edgerazor/model/model_config.h"
#include "edgerazor/quant/module_types.h"

namespace edgerazor::train {

void check_quantization_against_model(const config::TrainConfig& c) {
  if (!c.quantization) return;
  const std::string where = c.source.empty() ? std::string("config") : c.source;
  const std::string config_json = (std::filesystem::path(c.model.student) / "config.json").string();
  if (!std::filesystem::exists(config_json)) return;  // the file checks report a missing model
  const model::ModelConfig mc = model::load_model_config(config_json);
  int64_t total = 0;
  const auto modules = exporter::describe_model_shapes(mc, &total);
  config::QuantPlan plan;
  try {
    plan = config::plan_quantization(modules, *c.quantization, quant::module_type_keys());
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": quantization (against " + config_json + "): " + e.what());
  }
  if (plan.kv_modules.empty()) return;
  const auto* kv = config::find_function(plan.kv_settings.kv_cache_function);
  const int64_t block = plan.kv_settings.resolved_kv_block();
  if (kv && kv->granularity == config::Granularity::kBlock && block > 0 && mc.head_dim % block != 0)
    throw ConfigError(where + ": quantization.function.kv_block_size: " + std::to_string(block) +
                      " does not divide the head dimension " + std::to_string(mc.head_dim) + " of " + config_json);
}

}  // namespace edgerazor::train
