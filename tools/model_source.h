// The model a tool evaluates or generates with, as it will be deployed: MODEL may be a Hugging Face
// folder, a trainer checkpoint (checkpoints/step_N) or a run folder (its newest complete
// checkpoint). A checkpoint is quantized with its own quantization.yaml unless --quant names
// another preset/YAML (PTQ) or --no-quant asks for the float latent weights; the first line on
// stderr says which model and which quantization are used.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "edgerazor/config/quant_presets.h"
#include "edgerazor/config/train_config.h"
#include "edgerazor/core/error.h"
#include "edgerazor/export/quantized_model.h"

namespace edgerazor::cli {

struct ToolModel {
  std::string model_dir;      // config.json + safetensors
  std::string tokenizer_dir;  // tokenizer.model / tokenizer.json
  std::string quant;          // preset name or quantization YAML; "" = float weights
  std::vector<config::Override> sets;  // --set edits of that quantization config

  config::QuantConfig quant_config() const { return config::quant_config_from_arg(quant, sets); }
};

inline ToolModel resolve_tool_model(const std::string& tool, const std::string& source, const std::string& quant_flag,
                                    bool no_quant, const std::vector<std::string>& sets) {
  if (no_quant && !quant_flag.empty()) throw ConfigError("", 0, 0, "--no-quant", "give either --quant or --no-quant");
  exporter::ExportSourceOptions options;
  options.source = source;
  const exporter::ResolvedSource r = exporter::resolve_source(options);
  ToolModel m{r.model_dir, r.tokenizer_dir, ""};
  std::string what = r.model_dir;
  if (r.kind == "run") what += " (newest complete checkpoint of the run " + source + ")";
  std::string how;
  if (!quant_flag.empty()) {
    m.quant = quant_flag;
    how = "quantized with " + quant_flag + (r.quant_config_file.empty() ? " (PTQ)" : " instead of its trained quantization");
  } else if (!r.quant_config_file.empty() && !no_quant) {
    m.quant = r.quant_config_file;
    how = "with its trained quantization (" + r.quant_config_file + "; --no-quant for the float latent weights)";
  } else if (!r.quant_config_file.empty()) {
    how = "float latent weights (--no-quant; the run trained them quantized)";
  } else {
    how = "full precision";
  }
  for (const auto& s : sets) m.sets.push_back(config::parse_override(s));
  if (!m.sets.empty() && m.quant.empty())
    throw ConfigError("", 0, 0, "--set", "edits a quantization config: give --quant (or a checkpoint)");
  std::fprintf(stderr, "%s: %s, %s\n", tool.c_str(), what.c_str(), how.c_str());
  return m;
}

}  // namespace edgerazor::cli
