// Implements: the Hugging Face fake-quant export - a model folder (config.json + safetensors +
// tokenizer files) whose weights are the dequantized values codes * scales, cast to bf16 by
// default, with a `quantization_config` in config.json describing the scheme (spec
// quantization.md §7.1-§7.2: quant_method "edgerazor", quant_mode, weight/activation/kv bits,
// is_w_quantized true - the weights are already quantized, loaders must not quantize again),
// plus the full EdgeRazor config as YAML (edgerazor_config_yaml). With dtype float32 the values
// are bit-exact; bf16 rounds code * scale once.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>

#include "edgerazor/export/packed.h"
#include "edgerazor/export/quantized_model.h"

namespace edgerazor::exporter {

struct HfExportOptions {
  c10::ScalarType dtype = c10::ScalarType::BFloat16;
  uint64_t max_shard_bytes = 0;  // > 0: shard above this size
};

// The quantization_config object (JSON text) written into config.json.
std::string hf_quantization_config_json(const QuantizedModel& model);

WrittenSizes write_hf(const QuantizedModel& model, const std::string& dir, const HfExportOptions& options = {});

}  // namespace edgerazor::exporter
