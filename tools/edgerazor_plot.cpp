// edgerazor-plot: loss curves from metrics.jsonl files as an SVG line chart.
//
//   edgerazor-plot --out curves.svg --key loss runs/w1.58/metrics.jsonl:w1.58 runs/w1.88/metrics.jsonl:w1.88
//   edgerazor-plot --out eval.svg --key eval_loss --type eval runs/*/metrics.jsonl
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
    std::vector<std::string> inputs, keys;
    std::string out, type, title;
    bool log_y = false;
    CLI::App app{"edgerazor-plot: SVG line chart of metrics.jsonl values against step"};
    app.add_option("inputs", inputs, "metrics.jsonl files, each FILE[:LABEL]")->required();
    app.add_option("--out", out, "SVG file to write")->required();
    app.add_option("--key", keys, "value to plot (repeatable; default loss)");
    app.add_option("--type", type, "only lines of this type (e.g. train, eval)");
    app.add_option("--title", title, "chart title");
    app.add_flag("--log-y", log_y, "logarithmic y axis");
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    if (keys.empty()) keys = {"loss"};
    std::vector<edgerazor::plot::Series> series;
    for (const auto& input : inputs) {
      std::string file = input, label;
      const auto colon = input.rfind(':');
      if (colon != std::string::npos && !std::filesystem::exists(input)) {
        file = input.substr(0, colon);
        label = input.substr(colon + 1);
      }
      if (label.empty()) label = std::filesystem::path(file).parent_path().filename().string();
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
