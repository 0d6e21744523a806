// Hugging Face fake-quant folder export.
#include "edgerazor/export/hf_export.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "edgerazor/config/quant_presets.h"
#include "edgerazor/io/hf_model.h"

namespace edgerazor::exporter {
namespace fs = std::filesystem;
using nlohmann::json;

std::string hf_quantization_config_json(const QuantizedModel& model) {
  json q;
  q["format"] = "edgerazor fake-quant";
  q["is_w_quantized"] = true;
  if (!model.quant_config) {
    q["quant_mode"] = "none";
    return q.dump();
  }
  const config::QuantConfig& c = *model.quant_config;
  const std::string bits = weight_bits_label(c);
  const bool a8 = c.function.activation_function.find("int8") != std::string::npos;
  const bool kv8 = !model.coverage.kv_modules.empty() && c.function.kv_cache_function.find("int8") != std::string::npos;
  std::string mode = c.preset.empty() ? "w" + bits + (a8 ? "a8" : "") + (kv8 ? "kv8" : "") : c.preset;
  for (auto& ch : mode)
    if (ch == '.') ch = '_';
  q["quant_mode"] = mode;
  q["weight_bits"] = bits.empty() ? json(nullptr) : json(std::stod(bits));
  q["activation_bits"] = a8 ? 8 : 16;
  q["kv_cache_bits"] = kv8 ? 8 : 16;
  q["w_block_size"] = c.function.resolved_weight_block();
  q["weight_function"] = c.function.weight_function;
  if (!c.function.activation_function.empty()) q["activation_function"] = c.function.activation_function;
  if (!c.function.kv_cache_function.empty()) q["kv_cache_function"] = c.function.kv_cache_function;
  json not_converted = json::array();
  for (const auto& t : model.tensors)
    if (!t.quantized && t.value.dim() == 2) not_converted.push_back(t.name.substr(0, t.name.rfind('.')));
  q["modules_to_not_convert"] = not_converted;
  q["coverage"] = model.coverage.coverage();
  q["edgerazor_config_yaml"] = config::to_yaml(c);
  return q.dump();
}

WrittenSizes write_hf(const QuantizedModel& model, const std::string& dir, const HfExportOptions& options) {
  io::SaveOptions so;
  so.dtype = options.dtype;
  so.max_shard_bytes = options.max_shard_bytes;
  so.tokenizer_source_dir = model.source.tokenizer_dir;
  io::save_pretrained(*model.model, dir, so);
  // Our metadata goes under a key of its own: transformers reads "quantization_config" as a
  // request for one of its quantizers and refuses a method it does not know, while it keeps
  // unknown keys as plain attributes. The weights are already the fake-quant values, so the
  // folder loads as an ordinary float model. (tmp + rename)
  const fs::path cfg_path = fs::path(dir) / "config.json";
  json cfg;
  {
    std::ifstream in(cfg_path);
    cfg = json::parse(in);
  }
  cfg["edgerazor_quantization"] = json::parse(hf_quantization_config_json(model));
  {
    std::ofstream out(cfg_path.string() + ".tmp", std::ios::trunc);
    out << cfg.dump(2) << "\n";
  }
  fs::rename(cfg_path.string() + ".tmp", cfg_path);
  WrittenSizes sizes;
  const size_t elem = c10::elementSize(options.dtype);
  for (const auto& t : model.tensors) {
    sizes.tensor_bytes[t.name] = t.value.numel() * elem;
    sizes.stored_as[t.name] = options.dtype == c10::ScalarType::BFloat16 ? "BF16"
                              : options.dtype == c10::ScalarType::Half   ? "F16"
                                                                         : "F32";
  }
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") sizes.file_bytes += fs::file_size(e.path());
  return sizes;
}

}  // namespace edgerazor::exporter
