// Process-wide LibTorch settings that EdgeRazor applies on behalf of its users.
//
// Threads: Debian's LibTorch starts with one intra-op thread. When libedgerazor is loaded it
// sets the intra-op thread count to the number of cores, unless the user said otherwise:
//   EDGERAZOR_NUM_THREADS=N  -> N threads (0 = leave LibTorch's own default alone)
//   OMP_NUM_THREADS=N        -> respected (LibTorch already reads it)
// Tools also take --threads N, which calls set_threads(N). See configure_allocator() too.
//
// Under load: when the count is ours (no flag, no variable), adapt_threads() lowers it to the
// cores that other processes leave free, and raises it again when they go. OpenMP threads wait
// for each other at the end of every parallel region, so one thread that shares its core with
// another job stalls all of them: 2 threads beside one busy process trained 3x and generated 13x
// slower than 1 thread (bench/README.md, "Threads on a busy machine").
#pragma once

#include <cstddef>

namespace edgerazor::runtime {

// Number of logical cores this process may use (sched affinity, not the machine total).
int available_cores();

// Applies the policy above; idempotent. Called automatically when the library loads.
void configure_threads();

// Explicit override (N >= 1); also stops adapt_threads() from changing the count.
void set_threads(int n);

// Back to the library's own choice: every available core, following other load.
void use_default_threads();

// Called by long loops (training steps, generated tokens, evaluated batches) on the thread that
// runs the model. At most every half second it compares the busy time of this process's cores
// (/proc/stat) with this process's own CPU time; the rest is other load. Cheap between samples.
void adapt_threads();

// The policy itself: intra-op threads for `cores` cores when other processes keep `other_busy`
// cores busy (the nearest whole number of them is taken away; at least one thread).
int threads_beside_load(int cores, double other_busy);

// Allocator: keeps large temporaries in glibc's heap instead of a fresh mmap per allocation
// (M_MMAP_THRESHOLD kHeapBlockLimit, no trimming), which removes most page faults of a training
// step. Applied when the library loads unless EDGERAZOR_MALLOC_TUNING=0.
void configure_allocator();
// Blocks below this come from glibc's heap (which keeps their pages once touched); from it up they
// are mapped and unmapped per block. The caching allocator keeps the two kinds apart.
inline constexpr size_t kHeapBlockLimit = size_t{32} << 20;

// Warns (once, at load) when fp32 GEMMs go through OpenBLAS's pthread build while LibTorch runs
// more than one OpenMP thread: the two pools fight over the cores.
void check_blas_threading();

}  // namespace edgerazor::runtime
