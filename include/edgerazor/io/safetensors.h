// safetensors reader (memory-mapped, validated) and writer. Torch-free: tensors are described by
// dtype, shape and a pointer into the mapping; io/tensor_io.h turns them into at::Tensor.
//
// Byte layout (huggingface/safetensors README "Format"), all little-endian:
//   [0, 8)          uint64 N: byte length of the JSON header
//   [8, 8+N)        UTF-8 JSON object, may be padded with trailing spaces:
//                   {"name": {"dtype": "F32", "shape": [d0, d1], "data_offsets": [begin, end]}, ...,
//                    "__metadata__": {"key": "string value", ...}}
//   [8+N, size)     the byte buffer; data_offsets are relative to its start, end exclusive,
//                   row-major, little-endian.
// Validation (like safetensors' Metadata::validate): header length within the file and at most
// 100 MB, JSON object, no duplicate names, known dtype, non-negative dims without overflow,
// end - begin == numel * dtype size, ranges tiling the buffer from 0 without holes or overlaps,
// and the buffer ending exactly at the end of the file.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace edgerazor::io {

// The dtypes we read and write. Other safetensors dtypes (F8_*, complex...) are rejected with a
// clear "unsupported dtype" error; unknown strings with "unknown dtype".
enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);                           // "F32", "BF16", ...
std::optional<DType> dtype_from_name(const std::string& name);  // nullopt if not supported

struct TensorEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // relative to the data buffer
  uint64_t end = 0;    // exclusive
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A read-only memory mapping of one file (copy-on-write private mapping, so a consumer that
// writes into a view never changes the file nor faults).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the pages wholly inside [offset, offset + length) from this process's resident set
  // (madvise DONTNEED; they are read from the file again when touched). For streaming a file
  // larger than memory: only for ranges no one has written into through a view.
  void release(uint64_t offset, uint64_t length) const;

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws FormatError naming the file, offset and tensor.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  // Sorted by data offset (file order).
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  const TensorEntry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Pointer to the first byte of a tensor's data inside the mapping.
  const uint8_t* data(const TensorEntry& entry) const { return file_->data() + data_start_ + entry.begin; }
  uint64_t data_start() const { return data_start_; }  // 8 + N
  // MappedFile::release of one tensor's bytes, once it has been consumed.
  void release(const TensorEntry& entry) const { file_->release(data_start_ + entry.begin, entry.nbytes()); }
  // ... or of bytes [begin, begin + count) of it.
  void release(const TensorEntry& entry, uint64_t begin, uint64_t count) const {
    file_->release(data_start_ + entry.begin + begin, std::min(count, entry.nbytes() - std::min(begin, entry.nbytes())));
  }
  // Keeps the mapping alive (for zero-copy views).
  std::shared_ptr<const MappedFile> mapping() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  uint64_t data_start_ = 0;
  std::vector<TensorEntry> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint that may be one file or several shards listed in model.safetensors.index.json
// ({"metadata": {...}, "weight_map": {"name": "model-00001-of-00002.safetensors", ...}}).
class SafetensorsCheckpoint {
 public:
  // path: a .safetensors file, an .index.json file, or a folder holding model.safetensors or
  // model.safetensors.index.json.
  static SafetensorsCheckpoint open(const std::string& path);

  struct Located {
    const SafetensorsFile* file;
    const TensorEntry* entry;
  };
  std::optional<Located> find(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, const TensorEntry*>> map_;
};

// One tensor to write; data points at nbytes little-endian row-major bytes.
struct TensorBytes {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// Writes one safetensors file the Python library loads: header padded with spaces to a multiple
// of 8, tensors ordered by descending dtype size then name, "__metadata__" when not empty.
// Writes <path>.tmp and renames it; throws FormatError on I/O failure or inconsistent sizes.
void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes dir/model.safetensors, or when the total exceeds max_shard_bytes (> 0),
// dir/model-0000i-of-0000N.safetensors plus dir/model.safetensors.index.json. All files are
// written as .tmp first and renamed at the end; the layout not chosen is removed afterwards so
// the folder never holds two checkpoints. Returns the names of the files written.
std::vector<std::string> write_safetensors_checkpoint(const std::string& dir,
                                                      const std::vector<TensorBytes>& tensors,
                                                      const std::map<std::string, std::string>& metadata = {},
                                                      uint64_t max_shard_bytes = 0);

}  // namespace edgerazor::io
