// Implements: device specs and their resolution (see edgerazor/runtime/device.h).
#include "edgerazor/runtime/device.h"

#include <torch/cuda.h>
#include <torch/version.h>

#include "edgerazor/config/train_config.h"
#include "edgerazor/core/error.h"

namespace edgerazor::runtime {

bool built_with_cuda() {
#if defined(EDGERAZOR_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

int cuda_device_count() { return built_with_cuda() ? static_cast<int>(torch::cuda::device_count()) : 0; }

std::string cuda_unavailable_reason() {
  if (!built_with_cuda())
    return std::string("this LibTorch (") + TORCH_VERSION + ") was built without CUDA";
  if (cuda_device_count() > 0) return "";
  return std::string("no CUDA device is visible to this process (LibTorch ") + TORCH_VERSION +
         " with CUDA: torch::cuda::is_available() is false; no GPU, no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides them)";
}

c10::Device resolve_device(const std::string& spec, int local_rank, const std::string& what) {
  if (!config::is_device_spec(spec))
    throw ConfigError(what + ": expected cpu, cuda, cuda:N or auto, got '" + spec + "'");
  if (spec == "cpu") return c10::Device(c10::kCPU);
  const int count = cuda_device_count();
  if (spec == "auto" && count == 0) return c10::Device(c10::kCPU);
  if (count == 0) throw ConfigError(what + ": '" + spec + "' requested but " + cuda_unavailable_reason());
  int index = 0;
  if (spec.rfind("cuda:", 0) == 0) {
    index = std::stoi(spec.substr(5));  // at most 4 digits (is_device_spec)
  } else {  // cuda or auto: this rank's GPU
    index = local_rank;
    if (index >= count)
      throw ConfigError(what + ": '" + spec + "' picks cuda:LOCAL_RANK = cuda:" + std::to_string(index) +
                        " but this process sees " + std::to_string(count) +
                        " CUDA device(s); run at most that many ranks per node");
  }
  if (index >= count)
    throw ConfigError(what + ": '" + spec + "' but this process sees " + std::to_string(count) +
                      " CUDA device(s) (cuda:0..cuda:" + std::to_string(count - 1) + ")");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace edgerazor::runtime
