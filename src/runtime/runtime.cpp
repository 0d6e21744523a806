#include "edgerazor/runtime/runtime.h"
#include "edgerazor/core/log.h"

#include <c10/util/Exception.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>

#include "edgerazor/core/cli.h"
#include "edgerazor/core/error.h"
#include "thread_governor.h"

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
  if (n < 1) return;
  // Each intra-op thread beyond the cores only waits at OpenMP's barriers, and a count in the
  // thousands made LibTorch create threads without end.
  if (n > available_cores())
    throw ConfigError("", 0, 0, "--threads",
                      std::to_string(n) + " is more than the " + std::to_string(available_cores()) +
                          " cores this process may use; give at most " + std::to_string(available_cores()));
  at::set_num_threads(n);
  detail::governor_disable();
}

void configure_threads() {
  if (const char* env = std::getenv("EDGERAZOR_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > available_cores())
      log_warning("EDGERAZOR_NUM_THREADS=" + std::string(env) + " is more than the " +
                  std::to_string(available_cores()) + " cores this process may use; using " +
                  std::to_string(available_cores()));
    if (n >= 1) set_threads(std::min(n, available_cores()));
    return;  // 0 or junk: leave LibTorch alone
  }
  if (const char* omp = std::getenv("OMP_NUM_THREADS")) {
    if (std::atoi(omp) > available_cores()) {
      log_warning("OMP_NUM_THREADS=" + std::string(omp) + " is more than the " + std::to_string(available_cores()) +
                  " cores this process may use; using " + std::to_string(available_cores()));
      set_threads(available_cores());
    }
    return;
  }
  use_default_threads();
}

void use_default_threads() {
  at::set_num_threads(available_cores());
  detail::governor_enable(available_cores());
}

void configure_allocator() {
  if (const char* env = std::getenv("EDGERAZOR_MALLOC_TUNING"); env && std::string(env) == "0") return;
  // glibc serves blocks above 128 KiB-32 MiB with fresh mmap()s and returns them on free, so each
  // training step page-faults its large temporaries in again (~500k faults, 23 % of CPU time in
  // bench/README.md). Keeping them in the heap removed that: -28 % step time, same peak RSS.
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(kHeapBlockLimit));
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
}

void check_blas_threading() {
  // OpenBLAS's pthread build runs its own thread pool beside LibTorch's OpenMP threads, which spin
  // between parallel regions and take the cores from it: fp32 steps ran 2x slower (bench/README.md).
  using GetParallel = int (*)();
  const auto get_parallel = reinterpret_cast<GetParallel>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  if (get_parallel != nullptr && get_parallel() == 1 && at::get_num_threads() > 1)
    log_warning(
        "the system BLAS is OpenBLAS built with pthreads; its threads compete with LibTorch's OpenMP "
        "threads and fp32 matmuls run up to 2x slower. Install libopenblas0-openmp and select it "
        "(scripts/setup.sh does), or set OMP_WAIT_POLICY=PASSIVE");
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
    configure_allocator();
    check_blas_threading();
    cli::set_exception_formatter(&format_c10_error);
  }
};
const LibraryInit g_library_init;

}  // namespace
}  // namespace edgerazor::runtime
