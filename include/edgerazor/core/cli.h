// The common shell of every edgerazor-* tool: run a body, turn exceptions into one clear
// message on stderr and an exit code (2 for bad input: ConfigError, FormatError, bad flags;
// 1 for anything else). Torch-free, so edgerazor-data can use it too.
#pragma once

#include <functional>
#include <string>

namespace edgerazor::cli {

// Prints "<tool>: error: <message>" and returns the exit code. c10::Error is reported without
// its C++ backtrace (handled in the torch library through a registered formatter).
int run(const std::string& tool_name, const std::function<int()>& body);

// Lets the torch library teach run() how to print exceptions it does not know (c10::Error).
// The formatter returns true and sets message if it recognised the exception.
using ExceptionFormatter = bool (*)(const std::exception& error, std::string& message);
void set_exception_formatter(ExceptionFormatter formatter);

}  // namespace edgerazor::cli
