// Implements: check_config_against_models (see edgerazor/train/preflight.h).
#include "edgerazor/train/preflight.h"

#include <filesystem>

#include "edgerazor/config/quant_plan.h"
#include "edgerazor/core/error.h"
#include "edgerazor/export/report.h"
#include "edgerazor/model/model_config.h"
#include "edgerazor/quant/module_types.h"

namespace edgerazor::train {

namespace {

void check_sequence_length(const config::TrainConfig& c, const std::string& where) {
  for (const std::string& dir : {c.model.student, c.model.teacher}) {
    const std::string config_json = (std::filesystem::path(dir) / "config.json").string();
    if (dir.empty() || !std::filesystem::exists(config_json)) continue;
    const int64_t positions = model::load_model_config(config_json).max_position_embeddings;
    if (c.data.seq_len > positions)
      throw ConfigError(where, 0, 0, "data.seq_len",
                        std::to_string(c.data.seq_len) + " tokens per row is more than the " +
                            std::to_string(positions) + " positions of " + config_json +
                            " (max_position_embeddings)");
  }
}

}  // namespace

void check_config_against_models(const config::TrainConfig& c) {
  const std::string where = c.source.empty() ? std::string("config") : c.source;
  check_sequence_length(c, where);
  if (!c.quantization) return;
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
