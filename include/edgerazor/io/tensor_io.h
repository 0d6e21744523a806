// at::Tensor <-> safetensors: zero-copy views of mapped tensors and writing named tensors.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/io/safetensors.h"

namespace edgerazor::io {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// A CPU tensor viewing the mapped bytes (no copy when the data is aligned for its dtype; a copy
// otherwise). The view keeps the mapping alive; writing to it never changes the file.
at::Tensor tensor_view(const SafetensorsFile& file, const TensorEntry& entry);

// Every tensor of a file or checkpoint, copied into memory.
std::map<std::string, at::Tensor> load_safetensors(const std::string& path);

// Writes tensors (any device; made contiguous on CPU) to one file, or to a checkpoint folder
// (sharded above max_shard_bytes when > 0).
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
std::vector<std::string> save_safetensors_checkpoint(const std::string& dir, const NamedTensors& tensors,
                                                     uint64_t max_shard_bytes = 0,
                                                     const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace edgerazor::io
