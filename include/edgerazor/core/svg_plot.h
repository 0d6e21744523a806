// A small line-chart writer (SVG) for loss curves, so the demo and users get a plot from
// metrics.jsonl without gnuplot or Python. Torch-free.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace edgerazor::plot {

struct Series {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y), x ascending
};

// A horizontal reference line (e.g. the teacher's loss), dashed, labelled at its right end.
struct ReferenceLine {
  double y = 0;
  std::string label;
};

struct ChartOptions {
  std::string title;
  std::string x_label = "step";
  std::string y_label = "loss";
  int width = 800, height = 480;
  bool log_y = false;  // ticks at 1-2-5 multiples of powers of ten; values <= 0 are left out
  std::vector<ReferenceLine> reference_lines;
};

// The SVG document text.
std::string line_chart_svg(const std::vector<Series>& series, const ChartOptions& options);

// Reads metrics.jsonl lines ({"type", "step", key: value, ...}) and returns (step, value) of
// `key` from lines of `type` ("" = any type). Lines without the key or with a non-number are
// skipped. FormatError when the file cannot be read.
Series series_from_metrics(const std::string& metrics_jsonl, const std::string& key, const std::string& type,
                           const std::string& label);

}  // namespace edgerazor::plot
