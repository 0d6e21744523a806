// Named quantization presets (spec quantization.md §5.5) and the paper's per-model settings (§9).
//
// Names: w{1.58|1.88|2.79|4}a8kv8[_embint4][_qwen3|_mobilellm], plus w4a8, w1.58a8,
// w1.58a8kv16, a8kv8, and paper-{qwen3-0.6b|qwen3-1.7b|mobilellm-350m}-w{1.58|1.88|2.79|4}.
// "1.58" and "1_58" are the same name. Block sizes (weight/activation/KV):
//   generic ternary/mixed 256/256/64, generic w4 64/64/64, _qwen3 256/256/128, _mobilellm 64/64/64.
// Differences from the reference map: presets set is_w_quantized=false (they drive training,
// where the weights are latent), and 1.58-bit always uses the pure ternary function (never a
// mixed function with prop 0, which the reference silently turns into 1 % INT4).
#pragma once

#include <string>
#include <vector>

#include "edgerazor/config/quant_config.h"

namespace edgerazor::config {

// Throws ConfigError listing the known names when `name` is unknown.
QuantConfig preset(const std::string& name);
// A command-line value: a preset name, or a path to a YAML file with a quantization section.
QuantConfig quant_config_from_arg(const std::string& preset_or_path);
// The same with --set KEY=VALUE edits of its YAML before it is read (KEY relative to the
// quantization section, e.g. function.w_block_size=32; a leading "quantization." is accepted).
struct Override;
QuantConfig quant_config_from_arg(const std::string& preset_or_path, const std::vector<Override>& sets);
bool is_preset(const std::string& name);
std::vector<std::string> preset_names();
// "w1.58a8kv8_embint4" -> "w1_58a8kv8_embint4" (the canonical spelling).
std::string canonical_preset_name(const std::string& name);

// The paper's training recipe for one model and bit width (spec §9 and distillation.md).
struct PaperRecipe {
  std::string model;          // qwen3-0.6b, qwen3-1.7b, mobilellm-350m
  std::string bits;           // 1.58, 1.88, 2.79, 4
  std::string preset;         // quantization preset name
  double loss_task_alpha;     // CE weight
  double kld_alpha;           // entropy-aware KL weight (T=1, k=16, batch_mean)
  double mse_alpha;           // LAFD hidden-state MSE weight (adaptive layers)
  double learning_rate = 2e-5;
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8, weight_decay = 0.01, max_grad_norm = 1.0;
  std::string lr_schedule;    // constant_with_warmup | cosine_with_min_lr
  double warmup_ratio;
  int per_device_batch, accumulation, gpus;
  int max_seq_len = 1024;
  double epochs;              // 0 when max_steps rules
  int max_steps;              // 0 when epochs rule
  int seed = 3407;
};
// Throws ConfigError when the combination is not one of the paper's.
PaperRecipe paper_recipe(const std::string& model, const std::string& bits);
std::vector<PaperRecipe> paper_recipes();

}  // namespace edgerazor::config
