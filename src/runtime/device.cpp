// Implements: device specs and their resolution (see edgerazor/runtime/device.h).
#include "edgerazor/runtime/device.h"

#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <cctype>

#include "edgerazor/core/error.h"

namespace edgerazor::runtime {
namespace {

bool parse_index(const std::string& digits, int& out) {
  if (digits.empty() || digits.size() > 4 ||
      !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return false;
  out = std::stoi(digits);
  return true;
}

}  // namespace

bool is_device_spec(const std::string& spec) {
  int index = 0;
  return spec == "cpu" || spec == "cuda" || spec == "auto" ||
         (spec.rfind("cuda:", 0) == 0 && parse_index(spec.substr(5), index));
}

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
  if (!is_device_spec(spec))
    throw ConfigError(what + ": expected cpu, cuda, cuda:N or auto, got '" + spec + "'");
  if (spec == "cpu") return c10::Device(c10::kCPU);
  const int count = cuda_device_count();
  if (spec == "auto" && count == 0) return c10::Device(c10::kCPU);
  if (count == 0) throw ConfigError(what + ": '" + spec + "' requested but " + cuda_unavailable_reason());
  int index = 0;
  if (spec.rfind("cuda:", 0) == 0) {
    parse_index(spec.substr(5), index);
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
