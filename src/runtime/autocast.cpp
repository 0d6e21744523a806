#include "edgerazor/runtime/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace edgerazor::runtime {

c10::optional<at::ScalarType> cpu_autocast_dtype() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (!at::autocast::is_autocast_enabled(at::kCPU)) return c10::nullopt;
  return at::autocast::get_autocast_dtype(at::kCPU);
#else
  if (!at::autocast::is_cpu_enabled()) return c10::nullopt;
  return at::autocast::get_autocast_cpu_dtype();
#endif
}

}  // namespace edgerazor::runtime
