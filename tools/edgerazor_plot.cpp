// edgerazor-plot: loss curves from metrics.jsonl files as an SVG line chart.
//
//   edgerazor-plot --out curves.svg --key loss runs/w1.58/metrics.jsonl:w1.58 runs/w1.88/metrics.jsonl:w1.88
//   edgerazor-plot --out eval.svg --key eval_loss --type eval runs/*/metrics.jsonl --hline 1.42:teacher
//
// Each input is FILE[:LABEL] (the label defaults to the run folder's name); every --key makes one
// series per file.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "edgerazor/core/cli.h"
#include "tool_flags.h"
#include "edgerazor/core/error.h"
#include "edgerazor/core/svg_plot.h"

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-plot", [&] {
    std::vector<std::string> inputs, keys, hlines;
    std::string out, type, title;
    bool log_y = false;
    CLI::App app{"edgerazor-plot: SVG line chart of metrics.jsonl values against step"};
    app.add_option("inputs", inputs, "metrics.jsonl files, each FILE[:LABEL]")->required();
    app.add_option("--out", out, "SVG file to write")->required();
    app.add_option("--key", keys, "value to plot (repeatable; default loss)");
    app.add_option("--type", type, "only lines of this type (e.g. train, eval)");
    app.add_option("--title", title, "chart title");
    app.add_flag("--log-y", log_y, "logarithmic y axis");
    app.add_option("--hline", hlines, "dashed reference line at Y, e.g. the teacher's loss (repeatable)")->type_name("Y[:LABEL]");
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    if (keys.empty()) keys = {"loss"};
    if (std::filesystem::path(out).extension() != ".svg")
      throw edgerazor::ConfigError("", 0, 0, "--out",
                                   "'" + out + "': edgerazor-plot writes SVG, so the name must end in .svg (for a PNG: "
                                   "rsvg-convert -o plot.png plot.svg)");
    std::vector<edgerazor::plot::ReferenceLine> references;
    for (const auto& h : hlines) {
      const auto colon = h.find(':');
      edgerazor::plot::ReferenceLine r;
      size_t used = 0;
      try {
        r.y = std::stod(h.substr(0, colon), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != h.substr(0, colon).size())
        throw edgerazor::ConfigError("", 0, 0, "--hline", "'" + h + "' is not Y[:LABEL] with a number Y");
      r.label = colon == std::string::npos ? "reference" : h.substr(colon + 1);
      references.push_back(r);
    }
    std::vector<edgerazor::plot::Series> series;
    for (const auto& input : inputs) {
      std::string file = input, label;
      const auto colon = input.rfind(':');
      if (colon != std::string::npos && !std::filesystem::exists(input)) {
        file = input.substr(0, colon);
        label = input.substr(colon + 1);
      }
      if (label.empty()) label = std::filesystem::path(file).parent_path().filename().string();
      std::error_code same_error;
      if (std::filesystem::exists(out) && std::filesystem::equivalent(file, out, same_error))
        throw edgerazor::ConfigError("", 0, 0, "--out", "'" + out + "' is the input " + file + "; it would be overwritten");
      for (const auto& key : keys) {
        auto s = edgerazor::plot::series_from_metrics(file, key, type, keys.size() > 1 ? label + " " + key : label);
        if (s.points.empty())
          std::fprintf(stderr, "edgerazor-plot: warning: no '%s' values in %s\n", key.c_str(), file.c_str());
        series.push_back(std::move(s));
      }
    }
    edgerazor::plot::ChartOptions options;
    options.title = title;
    options.y_label = keys.size() == 1 ? keys.front() : "value";
    options.log_y = log_y;
    options.reference_lines = references;
    const std::string svg = edgerazor::plot::line_chart_svg(series, options);
    const std::string tmp = out + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary);
      if (!(f << svg)) throw edgerazor::FormatError(tmp, "cannot write");
    }
    std::filesystem::rename(tmp, out);
    std::fprintf(stderr, "edgerazor-plot: %zu series -> %s\n", series.size(), out.c_str());
    return 0;
  });
}
