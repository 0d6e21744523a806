// The library's own element loops (fused AdamW, the row-fused loss, fake quantization, ZeRO's shard
// update) split their work with at::parallel_for over LibTorch's intra-op threads. They are compiled with OpenMP for
// that (see src/runtime/openmp_required.h); this reports what such a loop gets at run time.
#pragma once

namespace edgerazor::runtime {

// Distinct threads that ran one at::parallel_for over a large range in a library source compiled
// like those loops: LibTorch's intra-op thread count, or 1 if they were built serial.
int library_parallel_threads();

}  // namespace edgerazor::runtime
