// export_model: source -> format -> report.
#include "edgerazor/export/export.h"

#include <filesystem>
#include <fstream>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"
#include "edgerazor/export/gguf_export.h"
#include "edgerazor/export/hf_export.h"

namespace edgerazor::exporter {
namespace fs = std::filesystem;

namespace {

void check_options(const ExportOptions& o) {
  if (o.format != "packed" && o.format != "hf" && o.format != "gguf")
    throw ConfigError("", 0, 0, "--format", "unknown format '" + o.format + "' (packed, hf, gguf)");
  if (o.out.empty()) throw ConfigError("", 0, 0, "--out", "an output path is required");
  // "dir/" names the folder dir (hf): its parent is what must exist; the folder itself is made.
  fs::path out = fs::path(o.out);
  while (out.has_parent_path() && !out.has_filename()) out = out.parent_path();
  const auto parent = out.parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    throw ConfigError("", 0, 0, "--out", "folder " + parent.string() + " does not exist");
  if (o.format != "hf" && fs::is_directory(o.out)) throw ConfigError("", 0, 0, "--out", o.out + " is a folder; give a file name");
  if (o.format == "hf" && fs::exists(o.out) && !fs::is_directory(o.out))
    throw ConfigError("", 0, 0, "--out", o.out + " exists and is not a folder");
  if (!o.report_path.empty()) {
    const auto report_parent = fs::path(o.report_path).parent_path();
    if (!report_parent.empty() && !fs::is_directory(report_parent))
      throw ConfigError("", 0, 0, "--report", "folder " + report_parent.string() + " does not exist");
    if (fs::is_directory(o.report_path)) throw ConfigError("", 0, 0, "--report", o.report_path + " is a folder; give a file name");
  }
  std::vector<std::string> inputs = files::model_folder_inputs(o.source.source);
  if (!o.source.config_file.empty()) inputs.push_back(o.source.config_file);
  files::refuse_output_over_inputs(o.out, inputs, "--out");
  files::refuse_output_over_inputs(o.report_path, inputs, "--report");
}

std::string report_path_of(const ExportOptions& o) {
  return !o.report_path.empty() ? o.report_path
         : o.format == "hf"     ? (fs::path(o.out) / "export_report.json").string()
                                : o.out + ".report.json";
}

// All outputs or none: a report that cannot be written takes the exported file with it.
void write_report(const ExportReport& report, const ExportOptions& o) {
  const std::string path = report_path_of(o), tmp = path + ".tmp";
  std::string reason;
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (out) {
      out << report.to_json() << "\n";
      out.close();
    }
    if (!out) reason = files::write_error_reason();
  }
  std::error_code ec;
  if (reason.empty()) {
    fs::rename(tmp, path, ec);
    if (ec) reason = ec.message();
  }
  if (reason.empty()) return;
  fs::remove(tmp, ec);
  if (o.format != "hf") fs::remove(o.out, ec);
  throw FormatError(path, "cannot write the export report (" + reason + ")" +
                              (o.format != "hf" ? "; removed " + o.out + " with it" : std::string()));
}

// The report of what was written (per tensor: its coverage label and how it was stored), also
// written beside the output.
ExportReport finish_report(const ExportOptions& o, const std::string& description, const config::CoverageReport& coverage,
                           std::vector<std::string> warnings, WrittenSizes& sizes,
                           const std::vector<StreamedGguf::Tensor>& tensors) {
  ExportReport report;
  report.format = o.format;
  report.path = o.out;
  report.source = description;
  report.coverage = coverage;
  report.warnings = std::move(warnings);
  report.file_bytes = sizes.file_bytes;
  std::map<std::string, std::string> labels;
  for (const auto& row : coverage.rows) labels[row.name] = row.label;
  for (const auto& t : tensors) {
    ExportReport::Tensor row;
    row.name = t.name;
    const std::string module = t.name.substr(0, t.name.rfind('.'));
    row.kind = t.quantized && labels.count(module) ? labels[module] : "unquantized";
    row.stored_as = sizes.stored_as.count(t.name) ? sizes.stored_as[t.name] : "-";
    row.numel = t.numel;
    row.bytes = sizes.tensor_bytes.count(t.name) ? sizes.tensor_bytes[t.name] : 0;
    report.tensors.push_back(std::move(row));
  }
  write_report(report, o);
  return report;
}

GgufExportOptions gguf_options(const ExportOptions& o) {
  GgufExportOptions go;
  go.type = o.gguf_type;
  go.fallback = o.gguf_fallback;
  return go;
}

}  // namespace

ExportReport export_model(const ExportOptions& options) {
  check_options(options);
  if (options.format != "gguf") return export_model(load_quantized_model(options.source), options);
  // GGUF streams from the checkpoint on disk: memory stays near one tensor, not the model.
  StreamedGguf streamed = stream_gguf(options.source, options.out, gguf_options(options));
  return finish_report(options, streamed.description, streamed.coverage, std::move(streamed.written.warnings),
                       streamed.written.sizes, streamed.tensors);
}

ExportReport export_model(const QuantizedModel& model, const ExportOptions& options) {
  check_options(options);
  WrittenSizes sizes;
  std::vector<std::string> warnings;
  if (options.format == "packed") {
    PackedOptions po;
    po.ternary = options.ternary;
    sizes = write_packed(model, options.out, po);
  } else if (options.format == "hf") {
    HfExportOptions ho;
    ho.dtype = options.hf_dtype;
    sizes = write_hf(model, options.out, ho);
  } else {
    GgufExportResult r = write_gguf(model, options.out, gguf_options(options));
    sizes = std::move(r.sizes);
    warnings = std::move(r.warnings);
  }
  std::vector<StreamedGguf::Tensor> tensors;
  for (const auto& t : model.tensors) tensors.push_back({t.name, t.quantized, t.value.numel()});
  return finish_report(options, model.description, model.coverage, std::move(warnings), sizes, tensors);
}

}  // namespace edgerazor::exporter
