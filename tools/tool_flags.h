// Flag parsing shared by the edgerazor-* tools (CLI11 stays out of the library headers).
#pragma once

#include <CLI/CLI.hpp>

#include <optional>

#include "edgerazor/core/error.h"

namespace edgerazor::cli {

// Parses argv into app. --help/--version print and return the exit code to end with; a bad
// flag becomes a ConfigError, which cli::run() reports as "<tool>: error: ..." with exit 2.
//   if (auto done = cli::parse_flags(app, argc, argv)) return *done;
inline std::optional<int> parse_flags(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    throw ConfigError("", 0, 0, "", e.what());
  }
  return std::nullopt;
}

}  // namespace edgerazor::cli
