// The default thread count gives way to other load (runtime::adapt_threads).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "edgerazor/runtime/runtime.h"

namespace rt = edgerazor::runtime;

TEST(ThreadGovernor, TakesTheNearestWholeNumberOfBusyCoresAway) {
  EXPECT_EQ(rt::threads_beside_load(2, 0.0), 2);
  EXPECT_EQ(rt::threads_beside_load(2, 0.3), 2);    // background noise keeps every core
  EXPECT_EQ(rt::threads_beside_load(2, 0.67), 1);   // one busy process sharing 2 cores with our 2 threads
  EXPECT_EQ(rt::threads_beside_load(2, 1.0), 1);
  EXPECT_EQ(rt::threads_beside_load(2, 3.0), 1);    // never below one thread
  EXPECT_EQ(rt::threads_beside_load(16, 3.6), 12);
  EXPECT_EQ(rt::threads_beside_load(1, 0.0), 1);
  EXPECT_EQ(rt::threads_beside_load(4, -0.2), 4);   // clock skew between the two counters
}

TEST(ThreadGovernor, DropsAThreadWhileAnotherProcessKeepsACoreBusy) {
  const int cores = rt::available_cores();
  if (cores < 2) GTEST_SKIP() << "needs 2 cores, this process may use " << cores;
  const pid_t busy = fork();
  ASSERT_GE(busy, 0);
  if (busy == 0) {
    for (volatile unsigned long i = 0;; i = i + 1) {
    }
  }
  rt::use_default_threads();
  EXPECT_EQ(at::get_num_threads(), cores);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < until && at::get_num_threads() == cores) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rt::adapt_threads();
  }
  const int under_load = at::get_num_threads();
  kill(busy, SIGKILL);
  waitpid(busy, nullptr, 0);
  EXPECT_LT(under_load, cores) << "the busy child should have taken a core away";
  EXPECT_GE(under_load, 1);
  rt::set_threads(2);  // what the other tests of this area run with (tests/CMakeLists.txt)
  EXPECT_EQ(at::get_num_threads(), 2);
}
