#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "edgerazor/core/error.h"
#include "edgerazor/core/svg_plot.h"

namespace edgerazor::plot {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(SvgPlot, ReadsMetricsByKeyAndType) {
  const auto path = std::filesystem::temp_directory_path() / "er_plot_metrics.jsonl";
  std::ofstream(path) << R"({"type":"train","step":2,"loss":3.0})" "\n"
                      << R"({"type":"train","step":1,"loss":5.0})" "\n"
                      << R"({"type":"eval","step":2,"loss":9.0,"eval_loss":3.5})" "\n"
                      << R"({"type":"train","step":3,"loss":"nan"})" "\n"
                      << R"({"type":5,"step":6,"loss":1.0})" "\n"            // not ours: skipped, no type_error
                      << R"({"type":"train","step":"7","loss":1.0})" "\n"
                      << R"({"type":"train","step":4,"lo)";  // torn last line
  const Series train = series_from_metrics(path.string(), "loss", "train", "run");
  ASSERT_EQ(train.points.size(), 2u);  // sorted by step; the "nan" string and torn line skipped
  EXPECT_EQ(train.points[0], std::make_pair(1.0, 5.0));
  EXPECT_EQ(train.points[1], std::make_pair(2.0, 3.0));
  EXPECT_EQ(series_from_metrics(path.string(), "loss", "", "any").points.size(), 4u);  // type 5 counts here
  EXPECT_EQ(series_from_metrics(path.string(), "eval_loss", "eval", "e").points.size(), 1u);
  std::filesystem::remove(path);
  EXPECT_THROW(series_from_metrics("/nonexistent/metrics.jsonl", "loss", "", ""), FormatError);
}

TEST(SvgPlot, ChartHasOneLinePerSeriesAndEscapedLabels) {
  const std::string svg = line_chart_svg({{"w1.58 <qad>", {{0, 4}, {10, 2}}}, {"ptq", {{0, 9}, {10, 9}}}},
                                         ChartOptions{"loss & curves"});
  EXPECT_THAT(svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_THAT(svg, HasSubstr("w1.58 &lt;qad&gt;"));
  EXPECT_THAT(svg, HasSubstr("loss &amp; curves"));
  size_t lines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++lines;
  EXPECT_EQ(lines, 2u);
  EXPECT_THAT(svg, HasSubstr("</svg>"));
}

TEST(SvgPlot, LogAxisTicksMarkersAndReferenceLines) {
  ChartOptions o;
  o.log_y = true;
  o.reference_lines = {{1.42, "teacher"}};
  const std::string svg = line_chart_svg({{"qad", {{0, 6.7}, {50, 2.9}, {100, 2.4}}}, {"one point", {{0, 9.0}}}}, o);
  // 1-2-5 ticks over ~1.3-10, not 6.31 / 3.981 / 2.512
  EXPECT_THAT(svg, HasSubstr(">2</text>"));
  EXPECT_THAT(svg, HasSubstr(">5</text>"));
  EXPECT_THAT(svg, Not(HasSubstr("3.981")));
  // a lone point is drawn as a marker; the dashed teacher line is labelled with its value
  EXPECT_THAT(svg, HasSubstr("<circle"));
  EXPECT_THAT(svg, HasSubstr("stroke-dasharray"));
  EXPECT_THAT(svg, HasSubstr("teacher (1.42)"));
  // the legend sits on its own box
  EXPECT_THAT(svg, HasSubstr("fill-opacity=\"0.85\""));
  // values <= 0 cannot be on a log axis: left out, not clamped to 1e-12
  const std::string zero = line_chart_svg({{"z", {{0, 0.0}, {1, 1.0}, {2, 10.0}}}}, o);
  EXPECT_THAT(zero, Not(HasSubstr("e-12")));
}

}  // namespace
}  // namespace edgerazor::plot
