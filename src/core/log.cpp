// Implements: log_warning, log_info (see edgerazor/core/log.h).
#include "edgerazor/core/log.h"

#include <spdlog/spdlog.h>

namespace edgerazor {

void log_warning(const std::string& message) { spdlog::warn("{}", message); }
void log_info(const std::string& message) { spdlog::info("{}", message); }

}  // namespace edgerazor
