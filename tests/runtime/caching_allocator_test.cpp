// The caching CPU allocator keeps a mapped (>= 32 MiB) block cached when a small request misses:
// the small one comes from glibc's heap, and the large one is there when its size comes back.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "edgerazor/runtime/caching_allocator.h"

namespace rt = edgerazor::runtime;

TEST(CachingCpuAllocator, ASmallMissDoesNotEvictAMappedBlock) {
  if (!rt::use_caching_cpu_allocator()) GTEST_SKIP() << "EDGERAZOR_CACHING_ALLOCATOR=0";
  const int64_t large = int64_t{40} << 20, small = int64_t{1} << 20;  // bytes
  at::empty({large}, at::kByte);  // allocated and freed: now cached
  // An odd size between 1 and 2 MiB (classes of 128 KiB there), normally a miss.
  const auto before_small = rt::cpu_memory_stats();
  at::Tensor odd = at::empty({small + 3 * 65536 + 17}, at::kByte);
  const auto after_small = rt::cpu_memory_stats();
  if (after_small.missed_bytes == before_small.missed_bytes) GTEST_SKIP() << "a cached block fitted the small request";
  at::Tensor again = at::empty({large}, at::kByte);  // the cached 40 MiB block, no new mapping
  const auto after_large = rt::cpu_memory_stats();
  EXPECT_EQ(after_large.missed_bytes, after_small.missed_bytes);
}
