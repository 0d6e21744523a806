#include "edgerazor/runtime/parallel_loops.h"

#include "openmp_required.h"

#include <ATen/Parallel.h>

#include <mutex>
#include <set>
#include <thread>

namespace edgerazor::runtime {

int library_parallel_threads() {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  // Grain 1: one chunk per thread at most; every chunk records the thread that ran it.
  at::parallel_for(0, 1 << 16, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mutex);
    threads.insert(std::this_thread::get_id());
  });
  return static_cast<int>(threads.size());
}

}  // namespace edgerazor::runtime
