// Implements: check_quantization_against_model (see edgerazor/train/preflight.h).
#include "edgerazor/train/preflight.h"

#include <filesystem>

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
  const auto modules = exporter::describe_model_shapes(mc, nullptr);
  try {  // the planner also checks kv_block_size against each attention module's head_dim
    config::plan_quantization(modules, *c.quantization, quant::module_type_keys());
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": quantization (against " + config_json + "): " + e.what());
  }
}

}  // namespace edgerazor::train
