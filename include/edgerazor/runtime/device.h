// Where a tool or the trainer computes, from the spelling users write in YAML (train.device) and
// on the command line (--device):
//   cpu      the CPU
//   cuda     the GPU of this rank: cuda:LOCAL_RANK (torchrun, edgerazor-launch, Slurm via
//            scripts/slurm_launch.sh), cuda:0 for a single process
//   cuda:N   GPU N
//   auto     cuda (as above) when this process sees a CUDA device, else cpu
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace edgerazor::runtime {

// Throws ConfigError naming `what` (e.g. "train.device", "--device") when the spec is malformed
// (config::is_device_spec),
// when CUDA is asked for and this LibTorch has no CUDA or this process sees no GPU (the reason
// says which), or when the GPU index is not below the number of visible GPUs.
c10::Device resolve_device(const std::string& spec, int local_rank = 0, const std::string& what = "device");

// True when this LibTorch was built with CUDA (independent of any GPU being present).
bool built_with_cuda();
// Number of CUDA devices this process sees (0 without a GPU, a driver or a CUDA build).
int cuda_device_count();
// Why CUDA cannot be used here, for messages and test skips; empty when a GPU is visible.
std::string cuda_unavailable_reason();

}  // namespace edgerazor::runtime
