#include "edgerazor/core/cli.h"

#include <cstdio>
#include <exception>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"

namespace edgerazor::cli {
namespace {
ExceptionFormatter g_formatter = nullptr;
}

void set_exception_formatter(ExceptionFormatter formatter) { g_formatter = formatter; }

int run(const std::string& tool_name, const std::function<int()>& body) {
  files::install_signal_cleanup();
  try {
    return body();
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool_name.c_str(), e.what());
    return 2;
  } catch (const FormatError& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool_name.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::string message = e.what();
    if (g_formatter) g_formatter(e, message);
    std::fprintf(stderr, "%s: error: %s\n", tool_name.c_str(), message.c_str());
    return 1;
  }
}

}  // namespace edgerazor::cli
