// Implements: the compression report every export prints and writes as JSON: per tensor what it
// is (ternary / int4 / mixed / unquantized), how it was stored and its bytes; per kind the real
// bits per weight; coverage; the file size against the bf16 model; the real ratio and the
// theoretical ratio of spec quantization.md §8.2 (config::CoverageReport::compression_ratio).
// Also estimates both from a model config alone (no weights), e.g. Qwen3-0.6B at 1.58 bits.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/config/quant_plan.h"
#include "edgerazor/model/model_config.h"

namespace edgerazor::exporter {

struct ExportReport {
  struct Tensor {
    std::string name;
    std::string kind;       // coverage label ("ternary", "int4", "mixed(12.5% int4)") or "unquantized"
    std::string stored_as;  // "TQ2_0", "Q4_0", "ternary_base3", "int4_nibbles", "F32", "BF16", ...
    int64_t numel = 0;
    uint64_t bytes = 0;
  };
  std::string format;       // packed | hf | gguf | estimate
  std::string path;
  std::string source;       // description of what was exported
  std::vector<Tensor> tensors;
  config::CoverageReport coverage;
  uint64_t file_bytes = 0;  // everything written (for hf: the safetensors files)
  std::vector<std::string> warnings;

  int64_t total_params() const;
  uint64_t bf16_bytes() const { return 2 * static_cast<uint64_t>(total_params()); }
  double file_ratio() const;         // bf16 bytes / file bytes
  double theoretical_ratio() const;  // spec §8.2
  // kind -> (weights, bytes) summed over tensors.
  std::map<std::string, std::pair<int64_t, uint64_t>> by_kind() const;
  std::string to_text() const;
  std::string to_json() const;
};

// The quantizable modules of a model config as the planner sees them (Linear and Embedding
// shapes under Hugging Face names, tied embeddings sharing one weight id), plus the total
// parameter count (norms included, tied weights once).
std::vector<config::ModuleInfo> describe_model_shapes(const model::ModelConfig& config, int64_t* total_params);

// The report of an export that has not happened: theoretical ratio from the plan and the sizes a
// packed (base-3) and a GGUF (TQ2_0/Q4_0, norms F32) file would have, from shapes alone.
struct SizeEstimate {
  config::CoverageReport coverage;
  uint64_t bf16_bytes = 0;
  uint64_t packed_bytes = 0;  // codes + bf16 scales + masks + bf16 unquantized
  uint64_t gguf_bytes = 0;    // tensor data only (metadata excluded)
};
SizeEstimate estimate_sizes(const model::ModelConfig& config, const config::QuantConfig& quant);

}  // namespace edgerazor::exporter
