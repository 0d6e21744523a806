#include "edgerazor/core/error.h"

namespace edgerazor {
namespace {

std::string config_location(const std::string& file, int line, int column, const std::string& key) {
  std::string where = file;
  if (line > 0) {
    where += ":" + std::to_string(line);
    if (column > 0) where += ":" + std::to_string(column);
  }
  std::string out;
  if (!where.empty()) out += where + ": ";
  if (!key.empty()) out += key + ": ";
  return out;
}

}  // namespace

ConfigError::ConfigError(const std::string& file, int line, int column, const std::string& key,
                         const std::string& message)
    : std::runtime_error(config_location(file, line, column, key) + message) {}

FormatError::FormatError(const std::string& path, uint64_t byte_offset, const std::string& message)
    : std::runtime_error(path + ": at byte " + std::to_string(byte_offset) + ": " + message) {}

FormatError::FormatError(const std::string& path, const std::string& message)
    : std::runtime_error(path + ": " + message) {}

}  // namespace edgerazor
