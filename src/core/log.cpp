// Implements: log_warning, log_info (see edgerazor/core/log.h).
#include "edgerazor/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace edgerazor {
namespace {

// On stderr: spdlog's default logger writes to stdout, where a warning would end up inside
// --print-ids output or a redirected result. Built on first use, so warnings from static
// initialisation (the thread settings) work too.
spdlog::logger& logger() {
  static const auto instance = [] {
    auto l = std::make_shared<spdlog::logger>("edgerazor", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    l->set_pattern("%^%l%$: %v");
    return l;
  }();
  return *instance;
}

}  // namespace

void log_warning(const std::string& message) { logger().warn("{}", message); }
void log_info(const std::string& message) { logger().info("{}", message); }

}  // namespace edgerazor
