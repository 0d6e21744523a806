// What every harness shares: a per-process scratch file for readers that take a path, and the
// rule that decides a finding. Readers must answer bad bytes with ConfigError, FormatError or
// (chat templates) jinja::TemplateError, whose messages name the file and place; any other
// exception is an unclear error for a user and aborts like a crash would, so the fuzzer keeps it.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

#include "edgerazor/core/error.h"
#include "edgerazor/text/chat_template_jinja.h"

namespace edgerazor_fuzz {

// RAM-backed when /dev/shm exists: the harness writes a file per input.
inline std::filesystem::path scratch_dir() {
  // Never destroyed: the atexit handler below runs after static destructors registered later.
  static const std::filesystem::path* const dir = [] {
    const std::filesystem::path shm = "/dev/shm";
    std::filesystem::path base = std::filesystem::is_directory(shm) ? shm : std::filesystem::temp_directory_path();
    auto* made = new std::filesystem::path(base / ("edgerazor-fuzz-" + std::to_string(::getpid())));
    std::filesystem::create_directories(*made);
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(scratch_dir(), ec); });
    return made;
  }();
  return *dir;
}

inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const auto path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path.string();
}

inline std::string write_scratch(const std::string& name, const std::string& text) {
  return write_scratch(name, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

template <class Body>
void expect_clear_errors(Body&& body) {
  try {
    body();
  } catch (const edgerazor::ConfigError&) {
  } catch (const edgerazor::FormatError&) {
  } catch (const edgerazor::text::jinja::TemplateError&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unclear error (%s): %s\n", typeid(e).name(), e.what());
    std::abort();
  }
}

}  // namespace edgerazor_fuzz
