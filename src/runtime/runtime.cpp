#include "edgerazor/runtime/runtime.h"

#include <c10/util/Exception.h>
#include <ATen/Parallel.h>
#include <sched.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "edgerazor/core/cli.h"

namespace edgerazor::runtime {

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

void set_threads(int n) {
  if (n >= 1) at::set_num_threads(n);
}

void configure_threads() {
  if (const char* env = std::getenv("EDGERAZOR_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) set_threads(n);
    return;  // 0 or junk: leave LibTorch alone
  }
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return;
  set_threads(available_cores());
}

namespace {

// c10::Error::what() carries a C++ backtrace; users get the message alone.
bool format_c10_error(const std::exception& error, std::string& message) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    message = c10_error->what_without_backtrace();
    return true;
  }
  return false;
}

struct LibraryInit {
  LibraryInit() {
    configure_threads();
    cli::set_exception_formatter(&format_c10_error);
  }
};
const LibraryInit g_library_init;

}  // namespace
}  // namespace edgerazor::runtime
