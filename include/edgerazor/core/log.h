// Warnings and notes on stderr, through spdlog. Torch-free, and spdlog stays out of every
// translation unit that sees LibTorch's headers: the torch wheel ships its own {fmt} (another
// major version than the one Debian's spdlog is built with), and the two cannot share a TU.
#pragma once

#include <string>

namespace edgerazor {

void log_warning(const std::string& message);
void log_info(const std::string& message);

}  // namespace edgerazor
