// Implements: GGUF export of a quantized model, written directly from the exact codes and
// scales - never by re-quantizing dequantized weights (DESIGN.md "Export is lossless").
//
// Per tensor (PyTorch (N, K) = ggml ne {K, N}; blocks run along K):
//   - ternary codes whose scale is constant over every aligned run of 256 weights in a row
//     (block 256, or any multiple, or per tensor/row): TQ2_0 (default) or TQ1_0, d = fp16(scale);
//   - ternary / INT4 / mixed codes with a scale constant over runs of 32: Q4_0, d = fp16(scale),
//     nibble = code + 8 (exact for any block that is a multiple of 32, and for blocks spanning
//     whole rows);
//   - INT5 / INT8 codes: Q8_0;
//   - anything else (e.g. a row length that is no multiple of 32): the fake-quant values as the
//     fallback float type (F16 by default), with a warning naming the tensor;
//   - unquantized matrices F16 (F32 when type is "f32"); 1-D tensors (norms, biases) always F32.
// For the llama architecture the q/k rows are permuted the way llama.cpp's rope expects
// (convert_hf_to_gguf.py LlamaModel.permute), codes and scales together.
// Metadata: general.*, the architecture's hyper-parameters (gguf_names.h), the tokenizer
// (gguf_tokenizer.h) and edgerazor.quantization (the quantization config as YAML).
#pragma once

#include <string>

#include "edgerazor/export/gguf_blocks.h"
#include "edgerazor/export/packed.h"
#include "edgerazor/export/quantized_model.h"

namespace edgerazor::exporter {

struct GgufExportOptions {
  std::string type = "auto";             // auto | tq2_0 | tq1_0 | q4_0 | f16 | f32
  GgmlType fallback = GgmlType::kF16;    // quantized tensors that fit no block type
  std::string name;                      // general.name; "" = the model folder's name
  std::string tokenizer_dir;             // "" = the source's tokenizer folder
  // stream_gguf: the largest slice of a matrix's rows converted and quantized at once (elements).
  int64_t max_slice_elements = int64_t{1} << 22;
};

struct GgufExportResult {
  WrittenSizes sizes;
  std::vector<std::string> warnings;  // returned, not logged: ExportReport::to_text() lists them
};

// Throws ConfigError for an unknown type and FormatError for I/O or tokenizer problems.
GgufExportResult write_gguf(const QuantizedModel& model, const std::string& path, const GgufExportOptions& options = {});

// The same file written from the source's checkpoint on disk one tensor at a time, never holding
// the model: each tensor is read from the memory-mapped safetensors (checked as loading checks it:
// shape, float dtype, finite), converted to ExportSourceOptions::dtype, quantized as the injected
// quantizer would (the plan of config::plan_quantization on the config's shapes), packed and
// written; a matrix whose scale groups stay inside rows goes a slice of rows at a time, and its
// mapped pages are released after it. Peak memory: the largest unsliced tensor's temporaries plus
// the tokenizer metadata. Byte-identical to write_gguf(load_quantized_model(source)) (tested).
struct StreamedGguf {
  GgufExportResult written;
  ResolvedSource source;
  std::optional<config::QuantConfig> quant_config;
  std::string description;           // as QuantizedModel::description
  config::CoverageReport coverage;   // as QuantizedModel::coverage
  struct Tensor {
    std::string name;
    bool quantized;
    int64_t numel;
  };
  std::vector<Tensor> tensors;       // checkpoint order, tied lm_head omitted
};
StreamedGguf stream_gguf(const ExportSourceOptions& source, const std::string& path, const GgufExportOptions& options = {});

// convert_hf_to_gguf.py's permute: (n_head, 2, rows/n_head/2, ...) with the middle axes swapped.
at::Tensor permute_qk_rows(const at::Tensor& rows_first, int64_t n_head);

}  // namespace edgerazor::exporter
