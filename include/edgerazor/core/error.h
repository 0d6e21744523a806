// Error types shared by every part of EdgeRazor. Torch-free.
//
// ConfigError: a bad setting in a YAML/JSON config or a bad flag; names file:line:column and the
//              full key path when they are known.
// FormatError: a bad byte in a file we read (safetensors, GGUF, token shard, checkpoint); names the
//              file, the byte offset and what was expected vs. found.
// Tools map both to exit code 2 (see edgerazor/core/cli.h); anything else exits 1.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace edgerazor {

class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& message) : std::runtime_error(message) {}
  // "file:line:column: key.path: message" (line/column 1-based; omitted when 0).
  ConfigError(const std::string& file, int line, int column, const std::string& key,
              const std::string& message);
};

class FormatError : public std::runtime_error {
 public:
  // "path: at byte OFFSET: message"
  FormatError(const std::string& path, uint64_t byte_offset, const std::string& message);
  // "path: message" when no offset applies (e.g. the file does not exist).
  FormatError(const std::string& path, const std::string& message);
};

}  // namespace edgerazor
