// A caching CPU allocator for training loops: freed blocks of 1 MiB and more are kept in per-size
// free lists and handed out again, so a step's large temporaries (logit chunks, the fp32 lm_head
// gradient, quantized weight copies, attention scores) are not page-faulted in and zeroed by the
// kernel on every step. glibc's mmap threshold (runtime.h, configure_allocator) covers blocks up
// to 32 MiB; this covers the larger ones too and keeps fragmentation down: in bench/README.md the
// fp32 QAD step's peak RSS fell from 3315 to 2645 MiB and its system time from 2.7 to 0.8 s/step.
//
//   edgerazor::runtime::use_caching_cpu_allocator();   // once; the Trainer and the bench call it
//
// Sizes are rounded up to a multiple of 1/16 of their power of two (at most 12.5 % slack); a
// request takes the smallest cached block of at least its size and at most 1/8 more. Two kinds
// (runtime::kHeapBlockLimit): heap blocks below 32 MiB come from glibc; on a heap miss, cached heap
// blocks go back to glibc until they cover the new one (so the resident set follows the live
// tensors instead of growing with every size a step ever used). Mapped blocks, from 32 MiB up, are
// mmap'd here, 2 MiB-aligned with transparent huge pages requested (EDGERAZOR_HUGE_PAGES=0: not),
// and, below 128 MiB, not given back between steps: such a miss takes the front of a larger
// cached block (the rest stays cached) or joins several cached blocks into one by moving their
// pages with mremap (no page fault, no zeroing); only what the cached blocks do not cover is new
// memory (EDGERAZOR_JOIN_MAPPED=0: mapped misses give cached mapped blocks back like heap misses,
// as larger mapped requests always do: fresh huge-page mappings measured faster for them). When
// the system refuses an allocation, the cache is given back and the allocation retried once. The
// cache holds at most EDGERAZOR_CPU_CACHE_MB MiB (default: a quarter of physical memory); blocks
// freed beyond that go back to the system. EDGERAZOR_CACHING_ALLOCATOR=0 turns the whole thing off.
#pragma once

#include <cstddef>

namespace edgerazor::runtime {

// Installs the allocator as LibTorch's CPU allocator (idempotent, process-wide, never removed).
// Returns false when disabled by the environment.
bool use_caching_cpu_allocator();

// Bytes held in the free lists right now (0 when not installed).
size_t cached_cpu_bytes();

// Tensor memory through the allocator since it was installed (zeros when it is not): bytes held by
// live tensors, their high-water mark, and bytes kept in the free lists. Peak RSS is at least
// peak_live_bytes + the cache + everything outside LibTorch's allocator.
struct CpuMemoryStats {
  size_t live_bytes = 0, peak_live_bytes = 0, cached_bytes = 0;
  // Cumulative: blocks of 1 MiB and more taken from the system because no cached block fitted,
  // and cached blocks given back to make room for them. Both stay near 0 per step once a
  // training loop is warm; growth means fresh pages (page faults) every step.
  size_t missed_bytes = 0, evicted_bytes = 0;
};
CpuMemoryStats cpu_memory_stats();
void reset_peak_live_bytes();  // peak := live

// Gives every cached block and the heap's free pages back to the system (e.g. between the
// tensors of a streamed export).
void release_cached_cpu_memory();
// The same, only when the heap has grown by more than `bytes` since the last such release;
// returns whether it released (pages given back fault in again when reused: not for every tensor).
bool release_free_heap_when_grown(size_t bytes);

}  // namespace edgerazor::runtime
