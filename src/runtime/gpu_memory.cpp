// Implements: gpu_memory, reset_gpu_peak (see edgerazor/runtime/gpu_memory.h).
#include "edgerazor/runtime/gpu_memory.h"

#include "edgerazor/runtime/device.h"

#if defined(EDGERAZOR_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace edgerazor::runtime {

GpuMemory gpu_memory(int device_index) {
  GpuMemory out;
#if defined(EDGERAZOR_WITH_CUDA)
  if (device_index < 0 || device_index >= cuda_device_count()) return out;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device_index));
  constexpr size_t kAggregate = 0;  // StatType::AGGREGATE: all pools together
  out.valid = true;
  out.allocated_bytes = stats.allocated_bytes[kAggregate].current;
  out.reserved_bytes = stats.reserved_bytes[kAggregate].current;
  out.peak_allocated_bytes = stats.allocated_bytes[kAggregate].peak;
#else
  (void)device_index;
#endif
  return out;
}

void reset_gpu_peak(int device_index) {
#if defined(EDGERAZOR_WITH_CUDA)
  if (device_index >= 0 && device_index < cuda_device_count())
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device_index));
#else
  (void)device_index;
#endif
}

}  // namespace edgerazor::runtime
