#include "edgerazor/runtime/caching_allocator.h"

#include "edgerazor/runtime/runtime.h"

#include <c10/core/Allocator.h>
#include <torch/version.h>
#include <sys/mman.h>
#include <unistd.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <map>
#include <unordered_map>
#include <vector>

namespace edgerazor::runtime {
namespace {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define ER_ALLOCATE_CONST
#else
#define ER_ALLOCATE_CONST const
#endif

constexpr size_t kMinCached = size_t(1) << 20;
constexpr size_t kAlignment = 64;  // c10's CPU alignment

size_t size_class(size_t n) {
  size_t p2 = 1;
  while (p2 < n) p2 <<= 1;
  const size_t step = std::max<size_t>(p2 / 16, 4096);
  return (n + step - 1) / step * step;
}

size_t cache_limit_bytes() {
  if (const char* env = std::getenv("EDGERAZOR_CPU_CACHE_MB")) {
    const long long mb = std::atoll(env);
    if (mb >= 0) return static_cast<size_t>(mb) << 20;
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<size_t>(pages) * static_cast<size_t>(page) / 4;
  return size_t(4) << 30;
}

void release_cached_blocks();

constexpr size_t kHugePage = size_t(2) << 20;

// Blocks of 32 MiB and more (those glibc maps instead of carving from its heap, and unmaps when
// they are freed) are 2 MiB-aligned and marked for transparent huge pages (madvise(MADV_HUGEPAGE);
// the kernel's THP mode here is "madvise"): the kernel then faults them in 2 MiB at a time
// instead of 4 KiB, ~500x fewer page faults (about 10 us each on these VMs) for a block the cache
// had to allocate or give back. Smaller blocks stay resident in glibc's heap once touched, and
// rounding them to huge pages cost 1 GB of RSS at the Qwen3-0.6B shape. EDGERAZOR_HUGE_PAGES=0: off.
bool huge_pages_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("EDGERAZOR_HUGE_PAGES");
    return env == nullptr || std::string(env) != "0";
  }();
  return on;
}

// posix_memalign; when it fails, gives the cached blocks back to the system and tries once more.
void* system_alloc(size_t n) {
  const bool huge = n >= kHeapBlockLimit && huge_pages_enabled();  // the mapped blocks
  const size_t alignment = huge ? kHugePage : kAlignment;
  void* p = nullptr;
  if (posix_memalign(&p, alignment, std::max<size_t>(n, kAlignment)) != 0) {
    release_cached_blocks();
    if (posix_memalign(&p, alignment, std::max<size_t>(n, kAlignment)) != 0) throw std::bad_alloc();
  }
  if (huge) ::madvise(p, n / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice: failure is harmless
  return p;
}

// Bytes of cached-size blocks taken from the system (misses) and of cached blocks given back to
// make room for them, since the allocator was installed.
std::atomic<size_t> g_missed{0}, g_evicted{0};

// Process-wide state: the deleter is a plain function pointer, so it cannot carry `this`.
struct Cache {
  std::mutex mutex;
  std::unordered_map<void*, size_t> live;           // cached-size blocks handed out
  std::map<size_t, std::vector<void*>> free_lists;  // by block size (best fit: lower_bound)
  size_t cached = 0;
  size_t limit = cache_limit_bytes();
};

// A free block for `size` bytes: the smallest cached one of at least `size` and at most 1/8 more
// (two size classes), or nullptr. Caller holds the lock.
void* take_block(Cache& c, size_t size, size_t* block_size) {
  auto it = c.free_lists.lower_bound(size);  // lists are erased when they empty
  if (it == c.free_lists.end() || it->first > size + size / 8) return nullptr;
  void* p = it->second.back();
  it->second.pop_back();
  *block_size = it->first;
  c.cached -= it->first;
  if (it->second.empty()) c.free_lists.erase(it);
  return p;
}

// On a miss, cached blocks of other sizes go back to the system first until they cover the new
// block: the memory the new block takes is then memory the process already had, so the resident
// set stays near the live tensors' peak instead of growing by every size class a step ever used.
// One block that covers it when there is one (the smallest such), else the largest ones: a small
// miss does not throw away a large block that the next phase reuses. Only blocks of the request's
// own kind (heap below kHeapBlockLimit, mapped from it up) make room: giving back a mapped block
// for a heap one saves nothing, and the mapped block is faulted in again (one fault per 4 KiB page,
// ~10 us each on these VMs) when its size comes back, as it does every step (a 1 MiB miss used to
// evict a 297 MiB logits-sized block: 2.2 GB of faults per Qwen3-0.6B step). Returns the blocks
// to free outside the lock. Caller holds the lock.
std::vector<void*> evict_for(Cache& c, size_t size) {
  std::vector<void*> out;
  auto pop = [&](std::map<size_t, std::vector<void*>>::iterator it) {
    out.push_back(it->second.back());
    it->second.pop_back();
    c.cached -= it->first;
    const size_t block = it->first;
    g_evicted.fetch_add(block);
    if (it->second.empty()) c.free_lists.erase(it);
    return block;
  };
  // The free lists of the request's kind are [first, last) (re-read after each pop: an emptied
  // list is erased).
  const bool mapped = size >= kHeapBlockLimit;
  auto first = [&] { return mapped ? c.free_lists.lower_bound(kHeapBlockLimit) : c.free_lists.begin(); };
  auto last = [&] { return mapped ? c.free_lists.end() : c.free_lists.lower_bound(kHeapBlockLimit); };
  const auto cover = c.free_lists.lower_bound(size);
  if (cover != last()) {
    pop(cover);
    return out;
  }
  for (size_t freed = 0; freed < size && first() != last();) freed += pop(std::prev(last()));
  return out;
}

// Bytes handed to tensors and not yet freed (cached blocks excluded), and their high-water mark.
std::atomic<size_t> g_live{0}, g_peak{0};

void add_live(size_t n) {
  const size_t now = g_live.fetch_add(n) + n;
  size_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}

void release_small(void* p) {
  if (p == nullptr) return;
  g_live.fetch_sub(malloc_usable_size(p));
  std::free(p);
}

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during static destruction
  return *c;
}

void release(void* p) {
  if (p == nullptr) return;
  Cache& c = cache();
  size_t size = 0;  // stays 0 for a block this allocator did not hand out at a cached size
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    const auto it = c.live.find(p);
    if (it != c.live.end()) {
      size = it->second;
      c.live.erase(it);
      if (c.cached + size <= c.limit) {
        c.free_lists[size].push_back(p);
        c.cached += size;
        g_live.fetch_sub(size);
        return;
      }
    }
  }
  if (size == 0) return release_small(p);  // a small block freed through raw_deallocate()
  g_live.fetch_sub(size);
  std::free(p);  // over the cache limit
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) ER_ALLOCATE_CONST override {
    if (n < kMinCached) {
      void* p = system_alloc(n);
      add_live(malloc_usable_size(p));
      return {p, p, &release_small, c10::Device(c10::DeviceType::CPU)};
    }
    size_t size = size_class(n);
    Cache& c = cache();
    void* p = nullptr;
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      p = take_block(c, size, &size);
      if (p == nullptr) evicted = evict_for(c, size);
    }
    for (void* e : evicted) std::free(e);
    if (p == nullptr) {
      p = system_alloc(size);
      g_missed.fetch_add(size);
    }
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      c.live[p] = size;
    }
    add_live(size);
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#endif
};

bool g_installed = false;

}  // namespace

bool use_caching_cpu_allocator() {
  static const bool installed = [] {
    const char* env = std::getenv("EDGERAZOR_CACHING_ALLOCATOR");
    if (env != nullptr && std::string(env) == "0") return false;
    // Never destroyed: LibTorch keeps using the registered allocator until the process ends.
    static auto* allocator = new CachingCpuAllocator();
    c10::SetAllocator(c10::DeviceType::CPU, allocator, /*priority=*/1);
    g_installed = true;
    return true;
  }();
  return installed;
}

size_t cached_cpu_bytes() {
  if (!g_installed) return 0;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.cached;
}

CpuMemoryStats cpu_memory_stats() {
  CpuMemoryStats s;
  if (!g_installed) return s;
  s.live_bytes = g_live.load();
  s.peak_live_bytes = g_peak.load();
  s.cached_bytes = cached_cpu_bytes();
  s.missed_bytes = g_missed.load();
  s.evicted_bytes = g_evicted.load();
  return s;
}

void reset_peak_live_bytes() { g_peak.store(g_live.load()); }

void release_cached_cpu_memory() {
  if (g_installed) release_cached_blocks();
  ::malloc_trim(0);  // free heap pages back to the kernel (the mallopt tuning keeps them otherwise)
}

bool release_free_heap_when_grown(size_t bytes) {
  static std::atomic<size_t> heap_at_last_release{0};
  const size_t heap = ::mallinfo2().arena;  // the main heap's size: grows when no hole fits a request
  if (heap <= heap_at_last_release.load() + bytes) return false;
  release_cached_cpu_memory();
  heap_at_last_release = ::mallinfo2().arena;  // after the trim: growth counts from here
  return true;
}

namespace {

void release_cached_blocks() {
  Cache& c = cache();
  std::vector<void*> blocks;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    for (auto& entry : c.free_lists) blocks.insert(blocks.end(), entry.second.begin(), entry.second.end());
    c.free_lists.clear();
    c.cached = 0;
  }
  for (void* p : blocks) std::free(p);
}

}  // namespace

}  // namespace edgerazor::runtime
