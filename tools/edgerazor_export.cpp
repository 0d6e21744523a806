// edgerazor-export: packed ternary checkpoint, Hugging Face fake-quant folder, or GGUF for
// llama.cpp, all written from the exact codes and scales, plus a compression report.
//
//   edgerazor-export RUN_DIR --format gguf --out model.gguf [--checkpoint step_N] [--gguf-type auto|tq1_0|tq2_0|q4_0|f16|f32]
//   edgerazor-export HF_DIR --preset w1.58a8kv8 --format packed --out model.erpk.safetensors   # PTQ baseline
//   edgerazor-export HF_DIR --config quant.yaml --format hf --out model-fakequant/ [--hf-dtype float32]
//   edgerazor-export --inspect model.gguf                                                   # list a GGUF file
//
// The report is printed and written as JSON to <out>.report.json (hf: <out>/export_report.json).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "edgerazor/core/cli.h"
#include "tool_flags.h"
#include "edgerazor/core/error.h"
#include "edgerazor/export/export.h"
#include "edgerazor/export/gguf.h"

namespace {
using edgerazor::ConfigError;
namespace ex = edgerazor::exporter;

int inspect(const std::string& path) {
  const auto g = ex::GgufFile::open(path);
  std::printf("%s: GGUF v%u, %zu keys, %zu tensors, alignment %u, data at byte %llu\n", path.c_str(), g->version(),
              g->metadata().size(), g->tensors().size(), g->alignment(), static_cast<unsigned long long>(g->data_offset()));
  for (const auto& [key, value] : g->metadata()) std::printf("  %-45s %s\n", key.c_str(), value.to_string().c_str());
  for (const auto& t : g->tensors()) {
    std::string ne;
    for (auto d : t.ne) ne += (ne.empty() ? "" : ", ") + std::to_string(d);
    std::printf("  %-32s %-6s {%s} %llu bytes\n", t.name.c_str(), ex::ggml_type_name(t.type), ne.c_str(),
                static_cast<unsigned long long>(t.nbytes));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-export", [&] {
    ex::ExportOptions o;
    std::string dtype = "float32", hf_dtype = "bfloat16", fallback = "f16", ternary = "base3", inspect_path;
    CLI::App app{"edgerazor-export: packed / Hugging Face / GGUF export of a quantized model"};
    app.add_option("source", o.source.source, "training run directory, checkpoint folder, or Hugging Face model folder");
    app.add_option("--format", o.format, "packed | hf | gguf");
    app.add_option("--out", o.out, "output file (packed, gguf) or folder (hf)");
    app.add_option("--preset", o.source.preset, "quantization preset (post-training quantization of an HF folder)");
    app.add_option("--config", o.source.config_file, "quantization config YAML (instead of a preset)");
    std::vector<std::string> sets;
    app.add_option("--set", sets, "edit the quantization config first, e.g. --set function.w_block_size=64")->type_name("KEY=VALUE");
    app.add_flag("--no-quant", o.source.no_quant, "export a checkpoint's float latent weights, not its trained quantization");
    app.add_option("--checkpoint", o.source.checkpoint, "run directory: step_N or latest (default: newest complete)");
    app.add_option("--gguf-type", o.gguf_type, "auto | tq2_0 | tq1_0 | q4_0 | f16 | f32");
    app.add_option("--gguf-fallback", fallback, "type of quantized tensors no GGUF block fits: f16 | f32");
    app.add_option("--ternary-packing", ternary, "packed format: base3 (1.6 bits) | 2bit");
    app.add_option("--dtype", dtype, "dtype the latent weights are quantized in: float32 | bfloat16");
    app.add_option("--hf-dtype", hf_dtype, "hf format: dtype of the fake-quant weights: bfloat16 | float16 | float32");
    app.add_option("--report", o.report_path, "report JSON path (default beside the output)");
    app.add_option("--inspect", inspect_path, "print the metadata and tensors of a GGUF file and exit");
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    if (!inspect_path.empty()) return inspect(inspect_path);
    for (const auto& s : sets) o.source.sets.push_back(edgerazor::config::parse_override(s));
    if (o.source.source.empty()) throw ConfigError("", 0, 0, "SOURCE", "a source folder is required");
    if (o.format.empty()) throw ConfigError("", 0, 0, "--format", "give --format packed, hf or gguf");
    if (dtype != "float32" && dtype != "bfloat16") throw ConfigError("", 0, 0, "--dtype", "float32 or bfloat16, got '" + dtype + "'");
    o.source.dtype = dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
    if (hf_dtype == "bfloat16") o.hf_dtype = at::kBFloat16;
    else if (hf_dtype == "float16") o.hf_dtype = at::kHalf;
    else if (hf_dtype == "float32") o.hf_dtype = at::kFloat;
    else throw ConfigError("", 0, 0, "--hf-dtype", "bfloat16, float16 or float32, got '" + hf_dtype + "'");
    if (fallback != "f16" && fallback != "f32") throw ConfigError("", 0, 0, "--gguf-fallback", "f16 or f32, got '" + fallback + "'");
    o.gguf_fallback = fallback == "f32" ? ex::GgmlType::kF32 : ex::GgmlType::kF16;
    if (ternary != "base3" && ternary != "2bit") throw ConfigError("", 0, 0, "--ternary-packing", "base3 or 2bit, got '" + ternary + "'");
    o.ternary = ternary == "2bit" ? ex::TernaryPacking::kTwoBit : ex::TernaryPacking::kBase3;
    const ex::ExportReport report = ex::export_model(o);
    std::printf("%s", report.to_text().c_str());
    return 0;
  });
}
