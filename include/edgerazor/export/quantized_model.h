// Implements: what every export format starts from - a model with its exact quantized form.
// Resolves an export SOURCE (training run directory, one checkpoint folder, or a plain Hugging
// Face folder plus a preset/config for post-training quantization), loads the latent weights,
// injects the quantizers and computes, per quantized weight, the exact integer codes and scales
// (quant::QuantizedTensor). The model's weights are then replaced by the fake-quant values; the
// exporter checks that they equal codes * scales bit for bit.
//
// Run directory layout (written by edgerazor-train):
//   <run>/checkpoints/step_<N>/{config.json, model.safetensors, quantization.yaml, DONE, tokenizer...}
//   <run>/checkpoints/latest   (symlink or file naming the newest complete step; optional)
// The newest step_* holding DONE is used unless a checkpoint is named.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/config/quant_plan.h"
#include "edgerazor/config/train_config.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/quant/functions.h"

namespace edgerazor::exporter {

struct ExportSourceOptions {
  std::string source;         // run dir, checkpoint dir (step_N) or HF model folder
  std::string preset;         // quantization preset (PTQ, or replaces a run's quantization.yaml)
  std::string config_file;    // quantization YAML (same role as preset)
  std::string checkpoint;     // run dir only: "step_N" or "latest"; "" = newest complete
  bool no_quant = false;      // ignore a checkpoint's quantization.yaml: the float latent weights
  std::vector<config::Override> sets;  // --set edits of the quantization config used (preset, YAML or the run's)
  at::ScalarType dtype = at::kFloat;  // dtype the latent weights are loaded and quantized in
};

struct ResolvedSource {
  std::string kind;                // "run", "checkpoint" or "hf"
  std::string model_dir;           // config.json + safetensors
  std::string tokenizer_dir;       // holds tokenizer.model or tokenizer.json
  std::string quant_config_file;   // the run's quantization.yaml, "" when none
  std::string checkpoint;          // step_N for runs and checkpoint folders
};

// Throws ConfigError (bad flags, no complete checkpoint, unknown step) / FormatError.
ResolvedSource resolve_source(const ExportSourceOptions& options);

struct ExportTensor {
  std::string name;        // Hugging Face name (model.layers.0.self_attn.q_proj.weight)
  at::Tensor value;        // what the model computes with: fake-quant when quantized
  bool quantized = false;
  quant::QuantizedTensor q;  // exact codes, scales, INT4 group mask (quantized only)
};

struct QuantizedModel {
  model::CausalLM model{nullptr};        // weights = fake-quant values, quantizers attached
  std::optional<config::QuantConfig> quant_config;  // none: exported unquantized
  config::CoverageReport coverage;
  std::vector<ExportTensor> tensors;     // checkpoint order, tied lm_head omitted
  ResolvedSource source;
  std::string description;               // one line for logs ("PTQ of <dir> with preset ...")

  const model::ModelConfig& config() const { return model->config; }
  const ExportTensor* find(const std::string& name) const;
  int64_t total_params() const;
};

QuantizedModel load_quantized_model(const ExportSourceOptions& options);

// The quantization an export of `source` applies (--preset, --config or the checkpoint's
// quantization.yaml, with --set edits), and the one-line description of the export. Warns about
// a preset replacing a trained config and a run that quantized nothing.
struct ResolvedQuantization {
  std::optional<config::QuantConfig> config;
  std::string description;
};
ResolvedQuantization resolve_quantization(const ExportSourceOptions& options, const ResolvedSource& source);

// The same from a model in memory whose quantizers are already injected (or none): computes the
// codes from its current (latent) weights and replaces them with fake-quant values.
QuantizedModel quantize_for_export(model::CausalLM model, std::optional<config::QuantConfig> quant_config);

// "1.58", "1.88", "2.79", "4" or "" from a config's weight functions (for metadata).
std::string weight_bits_label(const config::QuantConfig& config);

}  // namespace edgerazor::exporter
