// The library's at::parallel_for loops run on LibTorch's intra-op threads (they were serial while
// their sources were compiled without OpenMP: the fused AdamW and the row-fused loss took twice
// their time on 2 cores).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "edgerazor/runtime/parallel_loops.h"
#include "edgerazor/runtime/runtime.h"

namespace rt = edgerazor::runtime;

TEST(ParallelLoops, LibraryLoopsUseEveryIntraOpThread) {
  const int before = at::get_num_threads();
  rt::set_threads(2);
  EXPECT_EQ(rt::library_parallel_threads(), 2);
  rt::set_threads(1);
  EXPECT_EQ(rt::library_parallel_threads(), 1);
  rt::set_threads(before);
}
