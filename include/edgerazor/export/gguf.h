// Implements: GGUF v3 files - a writer (metadata key/values + tensors, written to <path>.tmp then
// renamed) and a validating reader (used by tests and `edgerazor-export --inspect`). Torch-free.
//
// Byte layout (ggml docs/gguf.md, src/gguf.cpp), all little-endian:
//   "GGUF" | uint32 version (3) | uint64 tensor_count | uint64 kv_count
//   kv[kv_count]:      gguf_string key | uint32 value_type | value
//   tensor_info[...]:  gguf_string name (< 64 bytes) | uint32 n_dims (<= 4) | uint64 ne[n_dims]
//                      (ne[0] = innermost, i.e. a PyTorch shape reversed) | uint32 ggml_type |
//                      uint64 offset (relative to the data section)
//   zero padding to `general.alignment` (uint32, power of two, default 32)
//   data: each tensor's bytes, in tensor_info order, each padded to the alignment; offsets must be
//         exactly contiguous in that order (ggml rejects anything else).
// gguf_string = uint64 length + bytes (no NUL). value types: UINT8 0, INT8 1, UINT16 2, INT16 3,
// UINT32 4, INT32 5, FLOAT32 6, BOOL 7 (1 byte), STRING 8, ARRAY 9 (uint32 element type +
// uint64 count + elements), UINT64 10, INT64 11, FLOAT64 12.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/export/gguf_blocks.h"

namespace edgerazor::exporter {

enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7,
  kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
const char* gguf_type_name(GgufType type);

// One metadata value. Scalars keep their exact type; arrays hold one element type.
struct GgufValue {
  GgufType type = GgufType::kUint32;
  GgufType array_type = GgufType::kUint32;  // element type when type == kArray
  uint64_t u = 0;        // unsigned scalars and bool
  int64_t i = 0;         // signed scalars
  double f = 0;          // floats
  std::string s;         // string
  std::vector<std::string> strings;  // array of strings
  std::vector<int64_t> ints;         // array of integers (any integer element type, bools)
  std::vector<double> floats;        // array of floats

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue i32_array(std::vector<int64_t> v);
  static GgufValue f32_array(std::vector<double> v);

  size_t array_size() const;
  std::string to_string(size_t max_items = 8) const;  // for --inspect and messages
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] innermost
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;      // relative to the data section (read files; GgufWriter::header() computes its own)
  uint64_t nbytes = 0;
  int64_t numel() const;
};

// Builds a GGUF file. Either in memory (add_tensor with its bytes, then write) or streamed, for
// models larger than memory: declare every tensor (name, shape, a provisional type), open_stream,
// then per tensor in order stream_data (any number of pieces) and end_tensor, set_tensor_type
// when the type chosen differs, and commit. The data goes behind room left for the header, which
// is written last (offsets and types have fixed sizes; metadata changed after open_stream makes
// commit move the data once). Output goes to <path>.tmp and is renamed by commit; a writer
// destroyed uncommitted removes it.
class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Throws std::invalid_argument on a duplicate key / tensor name or inconsistent sizes.
  void set(const std::string& key, GgufValue value);
  void replace(const std::string& key, GgufValue value);  // the key must be set; keeps its place
  void insert_after(const std::string& existing, const std::string& key, GgufValue value);
  void erase(const std::string& key);                      // no-op when absent
  // shape: PyTorch order (outermost first); it is stored reversed. data: ggml bytes of the type.
  void add_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& shape, std::vector<uint8_t> data);
  // Writes <path>.tmp and renames it; returns the file size. FormatError on I/O failure.
  uint64_t write(const std::string& path);
  uint64_t tensor_bytes(const std::string& name) const;

  // Streaming (see above). declare_tensor returns the tensor's index.
  size_t declare_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& shape);
  void set_tensor_type(size_t index, GgmlType type);
  void open_stream(const std::string& path);
  void stream_data(const void* data, size_t n);
  void rewind_tensor();  // drops what was streamed of the current tensor
  void end_tensor();   // std::logic_error when the bytes streamed are not the declared type's size
  uint64_t commit();   // returns the file size
  void abandon();      // closes and removes the temporary file

  std::string header() const;  // header bytes up to the (aligned) data section

 private:
  using KeyValues = std::vector<std::pair<std::string, GgufValue>>;
  KeyValues::iterator find_key(const std::string& key);
  uint32_t alignment_;
  KeyValues kv_;
  struct Tensor {
    GgufTensorInfo info;
    std::vector<uint8_t> data;  // in-memory tensors only
  };
  std::vector<Tensor> tensors_;
  // stream state
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t header_room_ = 0, data_bytes_ = 0, tensor_written_ = 0;
  size_t streamed_ = 0;
};

// A parsed, validated GGUF file (memory-mapped). Throws FormatError naming the file, the byte
// offset, and the key or tensor for: bad magic, unsupported version, counts or lengths past the
// end of the file or above caps, duplicate keys or tensor names, unknown value or tensor types,
// bad dimensions, rows not a multiple of the block size, misaligned / non-contiguous offsets,
// data past the end of the file, and a non-power-of-two alignment.
class GgufFile {
 public:
  static std::shared_ptr<GgufFile> open(const std::string& path);
  ~GgufFile();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const;
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const uint8_t* tensor_data(const GgufTensorInfo& info) const;
  // The tensor decoded to floats (row-major, PyTorch order).
  std::vector<float> dequantize(const GgufTensorInfo& info) const;

 private:
  GgufFile() = default;
  struct Mapping;
  std::unique_ptr<Mapping> map_;
  std::string path_;
  uint32_t version_ = 0, alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace edgerazor::exporter
