// GPU memory of LibTorch's CUDA caching allocator, for the trainer's metrics and the benchmarks:
// bytes held by live tensors (allocated), bytes the allocator holds from the driver (reserved),
// and the peak of allocated since the start or the last reset. Torch-free header.
#pragma once

#include <cstdint>

namespace edgerazor::runtime {

struct GpuMemory {
  bool valid = false;  // false on a CPU-only LibTorch or without a GPU
  int64_t allocated_bytes = 0;
  int64_t reserved_bytes = 0;
  int64_t peak_allocated_bytes = 0;
};

GpuMemory gpu_memory(int device_index);
void reset_gpu_peak(int device_index);

}  // namespace edgerazor::runtime
