// Flag parsing shared by the edgerazor-* tools (CLI11 stays out of the library headers).
#pragma once

#include <CLI/CLI.hpp>

#include <optional>

#include "edgerazor/core/error.h"

namespace edgerazor::cli {

// CLI::PositiveNumber and CLI::NonNegativeNumber report "not in range 0.000000 to 1797693...",
// the largest double written out in 309 digits. These say what is wanted in words.
inline CLI::Validator number_at_least(double low, bool inclusive, const char* words) {
  return CLI::Validator(
      [low, inclusive, words](std::string& value) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(value, v)) return "expected a number, got '" + value + "'";
        return (inclusive ? v >= low : v > low) ? std::string() : std::string("must be ") + words + ", got " + value;
      },
      inclusive ? "NUMBER >= 0" : "NUMBER > 0");
}
inline const CLI::Validator kPositive = number_at_least(0, false, "positive");
inline const CLI::Validator kNonNegative = number_at_least(0, true, "zero or more");

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
