// Export sources: run directory / checkpoint / HF folder resolution, and the exact quantized form.
#include "edgerazor/export/quantized_model.h"
#include "edgerazor/core/log.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "edgerazor/config/quant_functions.h"
#include "edgerazor/config/quant_presets.h"
#include "edgerazor/core/error.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/quant/inject.h"
#include "edgerazor/quant/weight_quantizer.h"
#include "edgerazor/train/checkpoint.h"

namespace edgerazor::exporter {
namespace fs = std::filesystem;

namespace {

constexpr const char* kQuantYaml = "quantization.yaml";

bool is_complete_step(const fs::path& dir) {
  return fs::is_directory(dir) && train::checkpoint_folder_step(dir.filename().string()) >= 0 && fs::exists(dir / "DONE");
}

bool has_tokenizer(const fs::path& dir) {
  return fs::exists(dir / "tokenizer.json") || fs::exists(dir / "tokenizer.model");
}

fs::path pick_checkpoint(const fs::path& run, const std::string& wanted) {
  const fs::path ckpts = run / "checkpoints";
  if (!wanted.empty() && wanted != "latest") {
    const fs::path dir = ckpts / wanted;
    if (!fs::is_directory(dir)) throw ConfigError("", 0, 0, "--checkpoint", "no checkpoint '" + wanted + "' in " + ckpts.string());
    if (!fs::exists(dir / "DONE"))
      throw ConfigError("", 0, 0, "--checkpoint", "checkpoint " + dir.string() + " is incomplete (no DONE marker)");
    return dir;
  }
  if (wanted == "latest" && fs::exists(ckpts / "latest")) {
    fs::path target = fs::is_symlink(ckpts / "latest") ? fs::read_symlink(ckpts / "latest") : fs::path();
    if (target.empty()) {  // a file naming the step
      std::ifstream in(ckpts / "latest");
      std::string name;
      in >> name;
      target = name;
    }
    if (target.is_relative()) target = ckpts / target;
    if (is_complete_step(target)) return target;
  }
  const auto newest = train::latest_checkpoint(run.string());
  if (!newest) throw ConfigError("", 0, 0, "SOURCE", "run " + run.string() + " has no complete checkpoint (step_N with DONE)");
  return newest->path;
}

}  // namespace

ResolvedSource resolve_source(const ExportSourceOptions& o) {
  const fs::path src = o.source;
  if (!fs::is_directory(src)) throw ConfigError("", 0, 0, "SOURCE", "'" + o.source + "' is not a directory");
  if (!o.preset.empty() && !o.config_file.empty())
    throw ConfigError("", 0, 0, "--preset", "give either --preset or --config, not both");
  ResolvedSource r;
  fs::path dir;
  if (fs::is_directory(src / "checkpoints")) {
    r.kind = "run";
    dir = pick_checkpoint(src, o.checkpoint);
  } else {
    if (!o.checkpoint.empty())
      throw ConfigError("", 0, 0, "--checkpoint", "'" + o.source + "' is not a run directory (no checkpoints/)");
    dir = src;
    r.kind = fs::exists(src / kQuantYaml) ? "checkpoint" : "hf";
    if (r.kind == "checkpoint" && !fs::exists(src / "DONE"))
      log_warning(src.string() + " has no DONE marker: the checkpoint may be incomplete");
  }
  if (!fs::exists(dir / "config.json")) throw FormatError((dir / "config.json").string(), "missing: not a model folder");
  r.model_dir = dir.string();
  if (r.kind != "hf") r.checkpoint = dir.filename().string();
  if (fs::exists(dir / kQuantYaml)) r.quant_config_file = (dir / kQuantYaml).string();
  r.tokenizer_dir = r.model_dir;
  if (!has_tokenizer(dir)) {
    for (fs::path up = dir.parent_path(); !up.empty() && up != up.parent_path(); up = up.parent_path()) {
      if (has_tokenizer(up)) {
        r.tokenizer_dir = up.string();
        break;
      }
      if (up == src) break;
    }
  }
  return r;
}

const ExportTensor* QuantizedModel::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

int64_t QuantizedModel::total_params() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.value.numel();
  return n;
}

QuantizedModel quantize_for_export(model::CausalLM model, std::optional<config::QuantConfig> quant_config) {
  torch::NoGradGuard no_grad;
  QuantizedModel out;
  out.model = model;
  out.quant_config = std::move(quant_config);
  std::map<std::string, const torch::nn::Module*> modules;
  for (const auto& item : model->named_modules("", /*include_self=*/true)) modules[item.key()] = item.value().get();

  for (auto& [name, param] : io::checkpoint_tensors(*model)) {
    ExportTensor t;
    t.name = name;
    const auto dot = name.rfind('.');
    const std::string module_name = dot == std::string::npos ? "" : name.substr(0, dot);
    const std::string param_name = dot == std::string::npos ? name : name.substr(dot + 1);
    const auto it = modules.find(module_name);
    const quant::WeightQuantizerImpl* quantizer = it == modules.end() ? nullptr : quant::find_weight_quantizer(*it->second);
    if (quantizer) {
      const auto& names = quantizer->options.parameter_names();
      if (std::find(names.begin(), names.end(), param_name) != names.end()) {
        if (quantizer->options.settings().is_w_quantized)
          log_warning(name + ": is_w_quantized is set; the stored weights are quantized again from their values");
        t.quantized = true;
        t.q = quantizer->quantize(param.detach());
      }
    }
    out.tensors.push_back(std::move(t));
  }
  quant::apply_quantized_weights(*model);
  size_t i = 0;
  for (auto& [name, param] : io::checkpoint_tensors(*model)) {
    ExportTensor& t = out.tensors[i++];
    t.value = param.detach();
    if (t.quantized) {
      const at::Tensor exact = t.q.dequantize().reshape(param.sizes());
      if (!at::equal(exact, t.value))
        throw std::logic_error("export: fake-quant weight '" + name + "' differs from codes * scales");
    }
  }
  out.coverage = quant::coverage_report(*model);
  return out;
}

ResolvedQuantization resolve_quantization(const ExportSourceOptions& options, const ResolvedSource& src) {
  std::optional<config::QuantConfig> qc;
  std::string how;
  if (!options.preset.empty()) {
    qc = config::quant_config_from_arg(options.preset, options.sets);
    how = "preset " + options.preset;
  } else if (!options.config_file.empty()) {
    qc = config::quant_config_from_arg(options.config_file, options.sets);
    how = "config " + options.config_file;
  } else if (!src.quant_config_file.empty() && !options.no_quant) {
    qc = config::quant_config_from_arg(src.quant_config_file, options.sets);
    how = "its quantization.yaml";
  }
  if (!options.sets.empty() && !qc)
    throw ConfigError("", 0, 0, "--set", "edits a quantization config: give --preset/--config (or a checkpoint)");
  if (!options.sets.empty()) how += " with " + std::to_string(options.sets.size()) + " --set edit(s)";
  if (options.no_quant && (!options.preset.empty() || !options.config_file.empty()))
    throw ConfigError("", 0, 0, "--no-quant", "give either --no-quant or --preset/--config");
  if (qc && !src.quant_config_file.empty() && (!options.preset.empty() || !options.config_file.empty()))
    log_warning(src.model_dir + " was trained with " + src.quant_config_file + "; quantizing with " + how + " instead");
  if (src.kind == "run" && !qc && !options.no_quant)
    log_warning("checkpoint " + src.model_dir + " has no quantization.yaml (the run quantized nothing): exporting it unquantized");
  const std::string what = src.kind == "hf" ? (qc ? "PTQ of " : "unquantized ") : src.kind + " ";
  return {qc, what + src.model_dir + (qc ? " with " + how : "")};
}

QuantizedModel load_quantized_model(const ExportSourceOptions& options) {
  const ResolvedSource src = resolve_source(options);
  ResolvedQuantization rq = resolve_quantization(options, src);
  io::LoadOptions lo;
  lo.dtype = options.dtype;
  model::CausalLM model = io::load_pretrained(src.model_dir, lo);
  model->eval();
  if (rq.config) quant::inject(*model, *rq.config);
  QuantizedModel out = quantize_for_export(model, rq.config);
  out.source = src;
  out.description = std::move(rq.description);
  return out;
}

std::string weight_bits_label(const config::QuantConfig& config) {
  const std::string& f = config.function.weight_function;
  if (f.find(config::kMixedFunctionPrefix) == 0) {
    const double p = config.function.resolved_weight_prop();
    return p >= 0.5 ? "2.79" : "1.88";
  }
  if (f.find("int1_58") != std::string::npos) return "1.58";
  if (f.find("int4") != std::string::npos) return "4";
  if (f.find("int8") != std::string::npos) return "8";
  if (f.find("int5") != std::string::npos) return "5";
  return "";
}

}  // namespace edgerazor::exporter
