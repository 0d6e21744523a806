// Process-wide LibTorch settings that EdgeRazor applies on behalf of its users.
//
// Threads: Debian's LibTorch starts with one intra-op thread. When libedgerazor is loaded it
// sets the intra-op thread count to the number of cores, unless the user said otherwise:
//   EDGERAZOR_NUM_THREADS=N  -> N threads (0 = leave LibTorch's own default alone)
//   OMP_NUM_THREADS=N        -> respected (LibTorch already reads it)
// Tools also take --threads N, which calls set_threads(N). See configure_allocator() too.
#pragma once

namespace edgerazor::runtime {

// Number of logical cores this process may use (sched affinity, not the machine total).
int available_cores();

// Applies the policy above; idempotent. Called automatically when the library loads.
void configure_threads();

// Explicit override (N >= 1).
void set_threads(int n);

// Allocator: keeps large temporaries in glibc's heap instead of a fresh mmap per allocation
// (M_MMAP_THRESHOLD 32 MiB, no trimming), which removes most page faults of a training step.
// Applied when the library loads unless EDGERAZOR_MALLOC_TUNING=0.
void configure_allocator();

// Warns (once, at load) when fp32 GEMMs go through OpenBLAS's pthread build while LibTorch runs
// more than one OpenMP thread: the two pools fight over the cores.
void check_blas_threading();

}  // namespace edgerazor::runtime
