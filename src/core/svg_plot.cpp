#include "edgerazor/core/svg_plot.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "edgerazor/core/error.h"

namespace edgerazor::plot {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fmt(double v) {
  char buf[32];
  const double a = std::fabs(v);
  if (a != 0 && (a >= 1e5 || a < 1e-3)) std::snprintf(buf, sizeof buf, "%.2e", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// 1-2-5 steps giving about `target` ticks over [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double span = hi - lo;
  if (!(span > 0)) return {lo};
  const double raw = span / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

// Ticks of a log axis over [lo, hi] (log10 units): the 1-2-5 (or, over less than a decade, every
// integer) multiples of the powers of ten inside it, as values.
std::vector<double> log_ticks(double lo, double hi) {
  const bool narrow = hi - lo < 1.0;
  std::vector<double> ticks;
  for (int e = static_cast<int>(std::floor(lo)); e <= static_cast<int>(std::ceil(hi)); ++e)
    for (int m = 1; m <= 9; ++m) {
      if (!narrow && m != 1 && m != 2 && m != 5) continue;
      const double v = m * std::pow(10.0, e);
      const double l = std::log10(v);
      if (l >= lo - 1e-9 && l <= hi + 1e-9) ticks.push_back(v);
    }
  if (ticks.size() > 12) {  // many decades: powers of ten only
    std::vector<double> decades;
    for (double v : ticks)
      if (std::fabs(std::log10(v) - std::round(std::log10(v))) < 1e-9) decades.push_back(v);
    ticks = decades;
  }
  return ticks;
}

const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// Points are drawn as markers too when a series has few of them (a lone point has no line).
constexpr size_t kMarkerPoints = 40;

}  // namespace

std::string line_chart_svg(const std::vector<Series>& series, const ChartOptions& o) {
  const double left = 70, right = 20, top = o.title.empty() ? 20 : 40, bottom = 50;
  const double pw = o.width - left - right, ph = o.height - top - bottom;
  const auto usable = [&](double y) { return std::isfinite(y) && (!o.log_y || y > 0); };
  const auto ty = [&](double y) { return o.log_y ? std::log10(y) : y; };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      if (!usable(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, ty(y)), y1 = std::max(y1, ty(y));
    }
  for (const auto& r : o.reference_lines)
    if (usable(r.y)) y0 = std::min(y0, ty(r.y)), y1 = std::max(y1, ty(r.y));
  if (!std::isfinite(x0)) x0 = 0, x1 = 1;
  if (!std::isfinite(y0)) y0 = 0, y1 = 1;
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad, y1 += pad;
  const auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  const auto py_t = [&](double t) { return top + (1 - (t - y0) / (y1 - y0)) * ph; };  // t in axis units
  const auto py = [&](double y) { return py_t(ty(y)); };

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << o.width << "\" height=\"" << o.height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!o.title.empty())
    svg << "<text x=\"" << o.width / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" << escape(o.title)
        << "</text>\n";
  for (double t : nice_ticks(x0, x1, 8)) {
    svg << "<line x1=\"" << px(t) << "\" y1=\"" << top << "\" x2=\"" << px(t) << "\" y2=\"" << top + ph
        << "\" stroke=\"#eee\"/><text x=\"" << px(t) << "\" y=\"" << top + ph + 16 << "\" text-anchor=\"middle\">"
        << fmt(t) << "</text>\n";
  }
  std::vector<double> y_ticks;  // values
  if (o.log_y) {
    y_ticks = log_ticks(y0, y1);
  } else {
    y_ticks = nice_ticks(y0, y1, 6);
  }
  for (double v : y_ticks) {
    const double y = py(v);
    svg << "<line x1=\"" << left << "\" y1=\"" << y << "\" x2=\"" << left + pw << "\" y2=\"" << y
        << "\" stroke=\"#eee\"/><text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << fmt(v)
        << "</text>\n";
  }
  svg << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
      << "\" fill=\"none\" stroke=\"#333\"/>\n";
  svg << "<text x=\"" << left + pw / 2 << "\" y=\"" << o.height - 12 << "\" text-anchor=\"middle\">"
      << escape(o.x_label) << "</text>\n";
  svg << "<text transform=\"translate(16," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
      << escape(o.y_label) << (o.log_y ? " (log)" : "") << "</text>\n";
  for (const auto& r : o.reference_lines) {
    if (!usable(r.y)) continue;
    const double y = py(r.y);
    svg << "<line class=\"reference\" x1=\"" << left << "\" y1=\"" << y << "\" x2=\"" << left + pw << "\" y2=\"" << y
        << "\" stroke=\"#555\" stroke-dasharray=\"6,4\"/><text x=\"" << left + 6 << "\" y=\"" << y - 4
        << "\" fill=\"#555\">" << escape(r.label) << " (" << fmt(r.y) << ")</text>\n";
  }
  for (size_t i = 0; i < series.size(); ++i) {
    const char* color = kColors[i % (sizeof kColors / sizeof kColors[0])];
    svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
    size_t drawn = 0;
    for (const auto& [x, y] : series[i].points)
      if (usable(y)) svg << px(x) << "," << py(y) << " ", ++drawn;
    svg << "\"/>\n";
    if (drawn <= kMarkerPoints)
      for (const auto& [x, y] : series[i].points)
        if (usable(y)) svg << "<circle cx=\"" << px(x) << "\" cy=\"" << py(y) << "\" r=\"2.5\" fill=\"" << color << "\"/>\n";
  }
  // Legend: top right inside the plot, on a white box sized to the longest label.
  if (!series.empty()) {
    size_t longest = 0;
    for (const auto& s : series) longest = std::max(longest, s.label.size());
    const double box_w = std::min(pw - 10, 36 + 7.0 * static_cast<double>(longest));
    const double box_h = 8 + 16.0 * static_cast<double>(series.size());
    const double bx = left + pw - box_w - 6, by = top + 6;
    svg << "<rect x=\"" << bx << "\" y=\"" << by << "\" width=\"" << box_w << "\" height=\"" << box_h
        << "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n";
    for (size_t i = 0; i < series.size(); ++i) {
      const char* color = kColors[i % (sizeof kColors / sizeof kColors[0])];
      const double ly = by + 16 + 16.0 * static_cast<double>(i);
      svg << "<line x1=\"" << bx + 6 << "\" y1=\"" << ly - 4 << "\" x2=\"" << bx + 26 << "\" y2=\"" << ly - 4
          << "\" stroke=\"" << color << "\" stroke-width=\"2\"/><text x=\"" << bx + 31 << "\" y=\"" << ly << "\">"
          << escape(series[i].label) << "</text>\n";
    }
  }
  svg << "</svg>\n";
  return svg.str();
}

Series series_from_metrics(const std::string& path, const std::string& key, const std::string& type,
                           const std::string& label) {
  std::ifstream in(path);
  if (!in) throw FormatError(path, "cannot open metrics file");
  Series s;
  s.label = label;
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      continue;  // a torn last line
    }
    if (!j.is_object() || !j.contains(key) || !j[key].is_number() || !j.contains("step") || !j["step"].is_number())
      continue;  // not a metrics record (what another tool wrote, or damage): nothing to plot
    if (!type.empty() && !(j.contains("type") && j["type"] == type)) continue;
    s.points.emplace_back(j["step"].get<double>(), j[key].get<double>());
  }
  std::sort(s.points.begin(), s.points.end());
  return s;
}

}  // namespace edgerazor::plot
