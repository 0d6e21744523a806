// Implements: one call per export - load SOURCE (run, checkpoint or HF folder + preset/config),
// write the chosen format (packed | hf | gguf), build the compression report, print nothing,
// write the report JSON beside the output. edgerazor-export is a thin shell over this.
#pragma once

#include <c10/core/ScalarType.h>

#include <string>

#include "edgerazor/export/gguf_blocks.h"
#include "edgerazor/export/packed.h"
#include "edgerazor/export/quantized_model.h"
#include "edgerazor/export/report.h"

namespace edgerazor::exporter {

struct ExportOptions {
  ExportSourceOptions source;
  std::string format;                          // packed | hf | gguf
  std::string out;                             // file (packed, gguf) or folder (hf)
  std::string gguf_type = "auto";              // auto | tq2_0 | tq1_0 | q4_0 | f16 | f32
  GgmlType gguf_fallback = GgmlType::kF16;     // quantized tensors no GGUF block type fits
  TernaryPacking ternary = TernaryPacking::kBase3;
  c10::ScalarType hf_dtype = c10::ScalarType::BFloat16;
  std::string report_path;                     // "" = <out>.report.json, or <out>/export_report.json for hf
};

// Throws ConfigError for bad options (before anything is written) and FormatError for bad inputs.
ExportReport export_model(const ExportOptions& options);
ExportReport export_model(const QuantizedModel& model, const ExportOptions& options);

}  // namespace edgerazor::exporter
