// Bridges the torch-free safetensors reader/writer to at::Tensor.
#include "edgerazor/io/tensor_io.h"

#include <ATen/ATen.h>

#include "edgerazor/core/error.h"

namespace edgerazor::io {
namespace {

at::ScalarType to_scalar_type(DType d) {
  switch (d) {
    case DType::kF64: return at::kDouble;
    case DType::kF32: return at::kFloat;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    case DType::kI64: return at::kLong;
    case DType::kI32: return at::kInt;
    case DType::kI16: return at::kShort;
    case DType::kI8: return at::kChar;
    case DType::kU8: return at::kByte;
    case DType::kBool: return at::kBool;
  }
  return at::kFloat;
}

DType to_dtype(at::ScalarType s, const std::string& name) {
  switch (s) {
    case at::kDouble: return DType::kF64;
    case at::kFloat: return DType::kF32;
    case at::kHalf: return DType::kF16;
    case at::kBFloat16: return DType::kBF16;
    case at::kLong: return DType::kI64;
    case at::kInt: return DType::kI32;
    case at::kShort: return DType::kI16;
    case at::kChar: return DType::kI8;
    case at::kByte: return DType::kU8;
    case at::kBool: return DType::kBool;
    default: break;
  }
  throw std::invalid_argument("tensor '" + name + "' has a dtype safetensors writing does not support: " +
                              std::string(c10::toString(s)));
}

}  // namespace

at::Tensor tensor_view(const SafetensorsFile& file, const TensorEntry& entry) {
  const auto options = at::TensorOptions().dtype(to_scalar_type(entry.dtype));
  auto* data = const_cast<uint8_t*>(file.data(entry));  // private mapping: writes stay in memory
  if (entry.nbytes() == 0) return at::empty(entry.shape, options);
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(entry.dtype) != 0) {
    at::Tensor out = at::empty(entry.shape, options);
    std::memcpy(out.data_ptr(), data, entry.nbytes());
    return out;
  }
  auto keep_alive = file.mapping();
  return at::from_blob(data, entry.shape, [keep_alive](void*) {}, options);
}

std::map<std::string, at::Tensor> load_safetensors(const std::string& path) {
  const auto ckpt = SafetensorsCheckpoint::open(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& name : ckpt.names()) {
    const auto located = *ckpt.find(name);
    out[name] = tensor_view(*located.file, *located.entry).clone();
  }
  return out;
}

namespace {

std::vector<TensorBytes> to_bytes(const NamedTensors& tensors, std::vector<at::Tensor>& keep) {
  std::vector<TensorBytes> out;
  for (const auto& [name, t] : tensors) {
    keep.push_back(t.detach().to(at::kCPU).contiguous());
    const at::Tensor& c = keep.back();
    TensorBytes b;
    b.name = name;
    b.dtype = to_dtype(c.scalar_type(), name);
    b.shape = c.sizes().vec();
    b.data = c.data_ptr();
    b.nbytes = c.nbytes();
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;
  write_safetensors(path, to_bytes(tensors, keep), metadata);
}

std::vector<std::string> save_safetensors_checkpoint(const std::string& dir, const NamedTensors& tensors,
                                                     uint64_t max_shard_bytes,
                                                     const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;
  return write_safetensors_checkpoint(dir, to_bytes(tensors, keep), metadata, max_shard_bytes);
}

}  // namespace edgerazor::io
