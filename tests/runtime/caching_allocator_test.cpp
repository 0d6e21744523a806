// The caching CPU allocator keeps a mapped (>= 32 MiB) block cached when a small request misses:
// the small one comes from glibc's heap, and the large one is there when its size comes back.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "edgerazor/runtime/caching_allocator.h"

namespace rt = edgerazor::runtime;

// Whether every byte of t (one per 4 KiB page and the last) holds v; no temporaries (a reduction
// would allocate blocks of its own).
bool holds(const at::Tensor& t, uint8_t v) {
  const uint8_t* p = t.data_ptr<uint8_t>();
  for (int64_t i = 0; i < t.numel(); i += 4096)
    if (p[i] != v) return false;
  return p[t.numel() - 1] == v;
}

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

// Mapped blocks are split and joined instead of given back and faulted in again: a cached 64 MiB
// block serves two 32 MiB requests (its front, then its rest), and those two, freed, serve a
// 64 MiB request again (their pages moved into one range with mremap); no new memory either time,
// and the joined block is ordinary writable memory.
TEST(CachingCpuAllocator, MappedBlocksSplitAndJoinWithoutNewMemory) {
  if (!rt::use_caching_cpu_allocator()) GTEST_SKIP() << "EDGERAZOR_CACHING_ALLOCATOR=0";
  const int64_t half = int64_t{32} << 20, whole = 2 * half;
  rt::release_cached_cpu_memory();  // nothing cached: the next block is a fresh one
  at::empty({whole}, at::kByte).fill_(1);  // allocated, touched, freed: cached
  const auto cached = rt::cpu_memory_stats();
  ASSERT_GE(cached.cached_bytes, static_cast<size_t>(whole));
  {
    at::Tensor a = at::empty({half}, at::kByte), b = at::empty({half}, at::kByte);
    EXPECT_EQ(rt::cpu_memory_stats().missed_bytes, cached.missed_bytes) << "the 64 MiB block was not split";
    a.fill_(2);
    b.fill_(3);
    EXPECT_TRUE(holds(a, 2));
    EXPECT_TRUE(holds(b, 3));
  }
  at::Tensor joined = at::empty({whole}, at::kByte);
  EXPECT_EQ(rt::cpu_memory_stats().missed_bytes, cached.missed_bytes) << "the two halves were not joined";
  joined.fill_(5);
  EXPECT_TRUE(holds(joined, 5));
}
