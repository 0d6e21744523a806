#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "edgerazor/core/error.h"
#include "edgerazor/core/svg_plot.h"

namespace edgerazor::plot {
namespace {

using ::testing::HasSubstr;

TEST(SvgPlot, ReadsMetricsByKeyAndType) {
  const auto path = std::filesystem::temp_directory_path() / "er_plot_metrics.jsonl";
  std::ofstream(path) << R"({"type":"train","step":2,"loss":3.0})" "\n"
                      << R"({"type":"train","step":1,"loss":5.0})" "\n"
                      << R"({"type":"eval","step":2,"loss":9.0,"eval_loss":3.5})" "\n"
                      << R"({"type":"train","step":3,"loss":"nan"})" "\n"
                      << R"({"type":"train","step":4,"lo)";  // torn last line
  const Series train = series_from_metrics(path.string(), "loss", "train", "run");
  ASSERT_EQ(train.points.size(), 2u);  // sorted by step; the "nan" string and torn line skipped
  EXPECT_EQ(train.points[0], std::make_pair(1.0, 5.0));
  EXPECT_EQ(train.points[1], std::make_pair(2.0, 3.0));
  EXPECT_EQ(series_from_metrics(path.string(), "loss", "", "any").points.size(), 3u);
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

}  // namespace
}  // namespace edgerazor::plot
