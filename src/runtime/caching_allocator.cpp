#include "edgerazor/runtime/caching_allocator.h"

#include "edgerazor/runtime/runtime.h"

#include <c10/core/Allocator.h>
#include <torch/version.h>
#include <sys/mman.h>
#include <unistd.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
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

// Blocks of 32 MiB and more (mapped blocks: glibc would map and unmap them per allocation) are
// mapped by this allocator itself, 2 MiB-aligned and marked for transparent huge pages
// (madvise(MADV_HUGEPAGE); the kernel's THP mode here is "madvise"): the kernel then faults them in
// 2 MiB at a time instead of 4 KiB, ~500x fewer page faults (about 10 us each on these VMs) for a
// block the cache had to allocate. Smaller blocks stay resident in glibc's heap once touched, and
// rounding them to huge pages cost 1 GB of RSS at the Qwen3-0.6B shape. EDGERAZOR_HUGE_PAGES=0: off.
bool huge_pages_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("EDGERAZOR_HUGE_PAGES");
    return env == nullptr || std::string(env) != "0";
  }();
  return on;
}

bool is_mapped(size_t block) { return block >= kHeapBlockLimit; }

// Mapped requests below this are served by splitting and joining cached mapped blocks (below);
// larger ones, and all with EDGERAZOR_JOIN_MAPPED=0, give cached mapped blocks back and map a fresh
// one, as heap misses do. Measured: at the 60M shape (32-64 MiB blocks) joining removed every page
// fault after the first step (steps 2-3 1.8-2.3 s -> 1.35-1.39 s); at Qwen3-0.6B's 155-320 MiB
// blocks it made steps ~2 % slower and the peak 150 MB higher than fresh huge-page mappings.
constexpr size_t kJoinBelow = size_t{128} << 20;

bool joinable(size_t size) {
  static const bool on = [] {
    const char* env = std::getenv("EDGERAZOR_JOIN_MAPPED");
    return env == nullptr || std::string(env) != "0";
  }();
  return on && is_mapped(size) && size < kJoinBelow;
}

// A fresh mapped block of n bytes (a multiple of 2 MiB: the size classes from 32 MiB up are), or
// nullptr. Mapped here rather than by glibc so that its pages can be moved between blocks with
// mremap (glibc's chunk headers would not survive that).
void* map_block(size_t n) {
  const size_t span = n + kHugePage;
  void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw), end = start + span;
  const uintptr_t aligned = (start + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  if (end > aligned + n) ::munmap(reinterpret_cast<void*>(aligned + n), end - (aligned + n));
  void* p = reinterpret_cast<void*>(aligned);
  if (huge_pages_enabled()) ::madvise(p, n, MADV_HUGEPAGE);  // advice: failure is harmless
  return p;
}

// Back to the system: mapped blocks unmapped, heap blocks to glibc.
void give_back(void* p, size_t block) {
  if (is_mapped(block)) ::munmap(p, block);
  else std::free(p);
}

void* try_system_alloc(size_t n) {
  if (is_mapped(n)) return map_block(n);
  void* p = nullptr;
  return posix_memalign(&p, kAlignment, std::max<size_t>(n, kAlignment)) == 0 ? p : nullptr;
}

// A new block from the system; when that fails, gives the cached blocks back and tries once more.
void* system_alloc(size_t n) {
  void* p = try_system_alloc(n);
  if (p == nullptr) {
    release_cached_blocks();
    p = try_system_alloc(n);
    if (p == nullptr) throw std::bad_alloc();
  }
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

struct Block {
  void* p;
  size_t size;
};

Cache& cache();

Block pop_block(Cache& c, std::map<size_t, std::vector<void*>>::iterator it) {
  const Block b{it->second.back(), it->first};
  it->second.pop_back();
  c.cached -= b.size;
  if (it->second.empty()) c.free_lists.erase(it);  // lists are erased when they empty
  return b;
}

void push_block(Cache& c, Block b) {
  c.free_lists[b.size].push_back(b.p);
  c.cached += b.size;
}

// A free block for `size` bytes: the smallest cached one of at least `size` and at most 1/8 more
// (two size classes), or nullptr. A joinable mapped request also takes a larger mapped block: its
// front when the rest is a mapped block of its own (>= kHeapBlockLimit, left cached where it is),
// else the whole block (at most 32 MiB more than asked). Caller holds the lock.
void* take_block(Cache& c, size_t size, size_t* block_size) {
  auto it = c.free_lists.lower_bound(size);
  if (it == c.free_lists.end()) return nullptr;
  const bool fits = it->first <= size + size / 8;
  if (!fits && !joinable(size)) return nullptr;
  const Block b = pop_block(c, it);
  *block_size = b.size;
  if (!fits && b.size - size >= kHeapBlockLimit) {
    push_block(c, Block{static_cast<char*>(b.p) + size, b.size - size});
    *block_size = size;
  }
  return b.p;
}

// Cached mapped blocks, largest first, until they cover `size` (or all there are) for a mapped
// request that no single cached block covers; taken out of the cache. Caller holds the lock.
std::vector<Block> take_pieces(Cache& c, size_t size) {
  std::vector<Block> pieces;
  size_t covered = 0;
  while (covered < size) {
    auto last = c.free_lists.end();
    if (last == c.free_lists.begin() || !is_mapped(std::prev(last)->first)) break;
    pieces.push_back(pop_block(c, std::prev(last)));
    covered += pieces.back().size;
  }
  return pieces;
}

// One mapped block of `size` bytes made of cached pieces: their pages are moved into a new range
// with mremap (page-table entries move, 2 MiB at a time for huge pages: nothing is faulted in or
// zeroed), the rest of the range is fresh. A piece's unused tail stays cached when it is a mapped
// block of its own, else goes back. Sets *fresh to the bytes not covered by pieces.
void* assemble(size_t size, const std::vector<Block>& pieces, size_t* fresh) {
  char* range = static_cast<char*>(map_block(size));
  if (range == nullptr) {
    for (const Block& b : pieces) ::munmap(b.p, b.size);  // make room, then try once more
    *fresh = size;
    return system_alloc(size);
  }
  size_t offset = 0;
  std::vector<Block> tails;
  for (const Block& b : pieces) {
    const size_t take = std::min(b.size, size - offset);
    if (take > 0 && ::mremap(b.p, take, take, MREMAP_MAYMOVE | MREMAP_FIXED, range + offset) == MAP_FAILED)
      ::munmap(b.p, take);  // left as fresh pages at range + offset
    offset += take;
    if (take < b.size) tails.push_back(Block{static_cast<char*>(b.p) + take, b.size - take});
  }
  *fresh = size - offset;
  if (!tails.empty()) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    for (const Block& t : tails) {
      if (is_mapped(t.size) && c.cached + t.size <= c.limit) push_block(c, t);
      else ::munmap(t.p, t.size);
    }
  }
  return range;
}

// On a heap miss, cached heap blocks of other sizes go back to glibc first until they cover the
// new block: the memory the new block takes is then memory the process already had, so the
// resident set stays near the live tensors' peak instead of growing by every size class a step
// ever used. One block that covers it when there is one (the smallest such), else the largest
// ones. Only blocks of the request's own kind make room: giving back a mapped block for a heap one
// saves nothing, and the mapped block is faulted in again when its size comes back, as it does
// every step (a 1 MiB miss used to evict a 297 MiB logits-sized block: 2.2 GB of faults per
// Qwen3-0.6B step). A mapped miss is normally served from cached mapped blocks instead (take_block
// splits one, assemble joins several), so mapped memory is neither given back nor faulted in again
// between steps; it comes here from kJoinBelow up or with EDGERAZOR_JOIN_MAPPED=0. Returns the
// blocks to free outside the lock. Caller holds the lock.
std::vector<Block> evict_for(Cache& c, size_t size) {
  std::vector<Block> out;
  auto pop = [&](std::map<size_t, std::vector<void*>>::iterator it) {
    out.push_back(pop_block(c, it));
    g_evicted.fetch_add(out.back().size);
    return out.back().size;
  };
  // The free lists of the request's kind are [first, last) (re-read after each pop: an emptied
  // list is erased).
  const bool mapped = is_mapped(size);
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
  give_back(p, size);  // over the cache limit
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
    std::vector<Block> evicted, pieces;
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      p = take_block(c, size, &size);
      if (p == nullptr && joinable(size)) pieces = take_pieces(c, size);
      else if (p == nullptr) evicted = evict_for(c, size);
    }
    for (const Block& e : evicted) give_back(e.p, e.size);
    if (p == nullptr) {
      size_t fresh = size;
      p = pieces.empty() ? system_alloc(size) : assemble(size, pieces, &fresh);
      g_missed.fetch_add(fresh);
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
  std::vector<Block> blocks;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    for (auto& entry : c.free_lists)
      for (void* p : entry.second) blocks.push_back(Block{p, entry.first});
    c.free_lists.clear();
    c.cached = 0;
  }
  for (const Block& b : blocks) give_back(b.p, b.size);
}

}  // namespace

}  // namespace edgerazor::runtime
