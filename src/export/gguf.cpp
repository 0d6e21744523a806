// GGUF writer and validating reader (byte layout in the header). Torch-free.
#include "edgerazor/export/gguf.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"
#include "edgerazor/io/safetensors.h"

namespace edgerazor::exporter {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxStringBytes = 1ull << 30;
constexpr uint64_t kMaxCount = 1ull << 32;   // kv pairs, tensors, array elements
constexpr size_t kMaxNameBytes = 63;         // GGML_MAX_NAME - 1
constexpr uint32_t kMaxDims = 4;

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kBool: return 1;
    case GgufType::kUint16: case GgufType::kInt16: return 2;
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kFloat32: return 4;
    case GgufType::kUint64: case GgufType::kInt64: case GgufType::kFloat64: return 8;
    default: return 0;
  }
}
bool is_signed(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 || t == GgufType::kInt64;
}
bool is_float(GgufType t) { return t == GgufType::kFloat32 || t == GgufType::kFloat64; }

uint64_t pad_to(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

// ---- writing ---------------------------------------------------------------------------------
struct Out {
  std::string b;
  void raw(const void* p, size_t n) { b.append(static_cast<const char*>(p), n); }
  template <typename T>
  void le(T v) { raw(&v, sizeof v); }  // little-endian host (x86-64, aarch64)
  void str(const std::string& s) {
    le<uint64_t>(s.size());
    raw(s.data(), s.size());
  }
  void scalar(GgufType t, uint64_t u, int64_t i, double f) {
    switch (t) {
      case GgufType::kUint8: le<uint8_t>(static_cast<uint8_t>(u)); break;
      case GgufType::kBool: le<uint8_t>(u ? 1 : 0); break;
      case GgufType::kInt8: le<int8_t>(static_cast<int8_t>(i)); break;
      case GgufType::kUint16: le<uint16_t>(static_cast<uint16_t>(u)); break;
      case GgufType::kInt16: le<int16_t>(static_cast<int16_t>(i)); break;
      case GgufType::kUint32: le<uint32_t>(static_cast<uint32_t>(u)); break;
      case GgufType::kInt32: le<int32_t>(static_cast<int32_t>(i)); break;
      case GgufType::kFloat32: le<float>(static_cast<float>(f)); break;
      case GgufType::kUint64: le<uint64_t>(u); break;
      case GgufType::kInt64: le<int64_t>(i); break;
      case GgufType::kFloat64: le<double>(f); break;
      default: throw std::invalid_argument("not a scalar GGUF type");
    }
  }
  void value(const GgufValue& v) {
    if (v.type == GgufType::kString) return str(v.s);
    if (v.type != GgufType::kArray) return scalar(v.type, v.u, v.i, v.f);
    le<uint32_t>(static_cast<uint32_t>(v.array_type));
    le<uint64_t>(v.array_size());
    if (v.array_type == GgufType::kString) {
      for (const auto& s : v.strings) str(s);
    } else if (is_float(v.array_type)) {
      for (double f : v.floats) scalar(v.array_type, 0, 0, f);
    } else {
      for (int64_t x : v.ints) scalar(v.array_type, static_cast<uint64_t>(x), x, 0);
    }
  }
};

// ---- reading ---------------------------------------------------------------------------------
struct In {
  const std::string& path;
  const uint8_t* p;
  uint64_t size, off = 0;
  uint64_t left() const { return size - off; }
  void need(uint64_t n, const std::string& what) const {
    if (n > left())
      throw FormatError(path, off, what + ": needs " + std::to_string(n) + " bytes but only " + std::to_string(left()) +
                                       " are left in the file");
  }
  template <typename T>
  T le(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p + off, sizeof v);
    off += sizeof v;
    return v;
  }
  std::string str(const std::string& what) {
    const uint64_t at = off;
    const uint64_t n = le<uint64_t>(what + " length");
    if (n > kMaxStringBytes || n > left())
      throw FormatError(path, at, what + ": string length " + std::to_string(n) + " exceeds the " +
                                      std::to_string(left()) + " bytes left in the file");
    std::string s(reinterpret_cast<const char*>(p + off), n);
    off += n;
    return s;
  }
  void scalar(GgufType t, GgufValue& v, const std::string& what) {
    switch (t) {
      case GgufType::kUint8: v.u = le<uint8_t>(what); break;
      case GgufType::kBool: v.u = le<uint8_t>(what); break;
      case GgufType::kInt8: v.i = le<int8_t>(what); break;
      case GgufType::kUint16: v.u = le<uint16_t>(what); break;
      case GgufType::kInt16: v.i = le<int16_t>(what); break;
      case GgufType::kUint32: v.u = le<uint32_t>(what); break;
      case GgufType::kInt32: v.i = le<int32_t>(what); break;
      case GgufType::kFloat32: v.f = le<float>(what); break;
      case GgufType::kUint64: v.u = le<uint64_t>(what); break;
      case GgufType::kInt64: v.i = le<int64_t>(what); break;
      case GgufType::kFloat64: v.f = le<double>(what); break;
      default: break;
    }
    if (!is_signed(t) && !is_float(t)) v.i = static_cast<int64_t>(v.u);
    if (is_signed(t)) v.u = static_cast<uint64_t>(v.i);
  }
  GgufType type(const std::string& what, bool allow_array) {
    const uint64_t at = off;
    const uint32_t t = le<uint32_t>(what);
    if (t > 12 || (!allow_array && t == 9))
      throw FormatError(path, at, what + ": unknown value type " + std::to_string(t));
    return static_cast<GgufType>(t);
  }
  GgufValue value(const std::string& what) {
    GgufValue v;
    v.type = type(what + " type", true);
    if (v.type == GgufType::kString) {
      v.s = str(what);
    } else if (v.type == GgufType::kArray) {
      v.array_type = type(what + " element type", false);
      const uint64_t at = off;
      const uint64_t n = le<uint64_t>(what + " count");
      const uint64_t min_bytes = v.array_type == GgufType::kString ? 8 : scalar_size(v.array_type);
      if (n > kMaxCount || (min_bytes > 0 && n > left() / min_bytes))
        throw FormatError(path, at, what + ": array of " + std::to_string(n) + " elements exceeds the bytes left");
      for (uint64_t k = 0; k < n; ++k) {
        if (v.array_type == GgufType::kString) {
          v.strings.push_back(str(what + "[" + std::to_string(k) + "]"));
        } else {
          GgufValue e;
          scalar(v.array_type, e, what);
          if (is_float(v.array_type)) v.floats.push_back(e.f);
          else v.ints.push_back(e.i);
        }
      }
    } else {
      scalar(v.type, v, what);
    }
    return v;
  }
};

}  // namespace

const char* gguf_type_name(GgufType type) {
  static const char* names[] = {"UINT8", "INT8",  "UINT16", "INT16",  "UINT32", "INT32", "FLOAT32",
                                "BOOL",  "STRING", "ARRAY", "UINT64", "INT64",  "FLOAT64"};
  const auto i = static_cast<uint32_t>(type);
  return i < 13 ? names[i] : "?";
}

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue x;
  x.type = GgufType::kUint32;
  x.u = v;
  x.i = v;
  return x;
}
GgufValue GgufValue::i32(int32_t v) {
  GgufValue x;
  x.type = GgufType::kInt32;
  x.i = v;
  return x;
}
GgufValue GgufValue::f32(float v) {
  GgufValue x;
  x.type = GgufType::kFloat32;
  x.f = v;
  return x;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue x;
  x.type = GgufType::kBool;
  x.u = v ? 1 : 0;
  return x;
}
GgufValue GgufValue::string(std::string v) {
  GgufValue x;
  x.type = GgufType::kString;
  x.s = std::move(v);
  return x;
}
GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.array_type = GgufType::kString;
  x.strings = std::move(v);
  return x;
}
GgufValue GgufValue::i32_array(std::vector<int64_t> v) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.array_type = GgufType::kInt32;
  x.ints = std::move(v);
  return x;
}
GgufValue GgufValue::f32_array(std::vector<double> v) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.array_type = GgufType::kFloat32;
  x.floats = std::move(v);
  return x;
}

size_t GgufValue::array_size() const {
  if (type != GgufType::kArray) return 0;
  if (array_type == GgufType::kString) return strings.size();
  return is_float(array_type) ? floats.size() : ints.size();
}

std::string GgufValue::to_string(size_t max_items) const {
  std::ostringstream o;
  auto scalar = [&](GgufType t, uint64_t uu, int64_t ii, double ff) {
    if (t == GgufType::kBool) o << (uu ? "true" : "false");
    else if (is_float(t)) o << ff;
    else if (is_signed(t)) o << ii;
    else o << uu;
  };
  if (type == GgufType::kString) {
    o << '"' << (s.size() > 60 ? s.substr(0, 60) + "..." : s) << '"';
  } else if (type == GgufType::kArray) {
    o << gguf_type_name(array_type) << "[" << array_size() << "] {";
    for (size_t k = 0; k < std::min(max_items, array_size()); ++k) {
      if (k) o << ", ";
      if (array_type == GgufType::kString) o << '"' << strings[k] << '"';
      else if (is_float(array_type)) o << floats[k];
      else o << ints[k];
    }
    o << (array_size() > max_items ? ", ...}" : "}");
  } else {
    scalar(type, u, i, f);
  }
  return o.str();
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

// ---- writer ----------------------------------------------------------------------------------
GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw std::invalid_argument("GGUF alignment must be a power of two, got " + std::to_string(alignment));
}

GgufWriter::~GgufWriter() { abandon(); }

std::vector<std::pair<std::string, GgufValue>>::iterator GgufWriter::find_key(const std::string& key) {
  return std::find_if(kv_.begin(), kv_.end(), [&](const auto& kv) { return kv.first == key; });
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (find_key(key) != kv_.end()) throw std::invalid_argument("GGUF key '" + key + "' set twice");
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::replace(const std::string& key, GgufValue value) {
  const auto it = find_key(key);
  if (it == kv_.end()) throw std::invalid_argument("GGUF key '" + key + "' is not set");
  it->second = std::move(value);
}

void GgufWriter::insert_after(const std::string& existing, const std::string& key, GgufValue value) {
  if (find_key(key) != kv_.end()) throw std::invalid_argument("GGUF key '" + key + "' set twice");
  const auto it = find_key(existing);
  if (it == kv_.end()) throw std::invalid_argument("GGUF key '" + existing + "' is not set");
  kv_.insert(it + 1, {key, std::move(value)});
}

void GgufWriter::erase(const std::string& key) {
  const auto it = find_key(key);
  if (it != kv_.end()) kv_.erase(it);
}

size_t GgufWriter::declare_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& shape) {
  if (name.size() > kMaxNameBytes)
    throw std::invalid_argument("GGUF tensor name '" + name + "' is longer than 63 bytes");
  if (shape.empty() || shape.size() > kMaxDims)
    throw std::invalid_argument("GGUF tensor '" + name + "' must have 1 to 4 dimensions");
  for (const auto& t : tensors_)
    if (t.info.name == name) throw std::invalid_argument("GGUF tensor '" + name + "' added twice");
  Tensor t;
  t.info.name = name;
  t.info.ne.assign(shape.rbegin(), shape.rend());
  tensors_.push_back(std::move(t));
  set_tensor_type(tensors_.size() - 1, type);
  return tensors_.size() - 1;
}

void GgufWriter::set_tensor_type(size_t index, GgmlType type) {
  if (fd_ >= 0 && index < streamed_)  // its bytes are placed: another size would shift every offset after it
    throw std::logic_error("GGUF tensor '" + tensors_.at(index).info.name + "' is written; its type cannot change");
  GgufTensorInfo& info = tensors_.at(index).info;
  info.type = type;
  uint64_t rows = 1;
  for (size_t k = 1; k < info.ne.size(); ++k) rows *= static_cast<uint64_t>(info.ne[k]);
  info.nbytes = ggml_row_bytes(type, info.ne[0]) * rows;
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& shape,
                            std::vector<uint8_t> data) {
  const size_t index = declare_tensor(name, type, shape);
  if (data.size() != tensors_[index].info.nbytes) {
    const uint64_t needed = tensors_[index].info.nbytes;
    tensors_.pop_back();
    throw std::invalid_argument("GGUF tensor '" + name + "': " + std::to_string(data.size()) + " bytes given, " +
                                ggml_type_name(type) + " needs " + std::to_string(needed));
  }
  tensors_[index].data = std::move(data);
}

uint64_t GgufWriter::tensor_bytes(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.info.name == name) return t.info.nbytes;
  return 0;
}

std::string GgufWriter::header() const {
  Out h;
  h.raw("GGUF", 4);
  h.le<uint32_t>(3);
  h.le<uint64_t>(tensors_.size());
  const bool has_alignment_key = std::any_of(kv_.begin(), kv_.end(), [](const auto& kv) { return kv.first == "general.alignment"; });
  h.le<uint64_t>(kv_.size() + (has_alignment_key || alignment_ == 32 ? 0 : 1));
  for (const auto& [key, value] : kv_) {
    h.str(key);
    h.le<uint32_t>(static_cast<uint32_t>(value.type));
    h.value(value);
  }
  if (!has_alignment_key && alignment_ != 32) {
    h.str("general.alignment");
    h.le<uint32_t>(static_cast<uint32_t>(GgufType::kUint32));
    h.le<uint32_t>(alignment_);
  }
  uint64_t offset = 0;  // offsets are exactly contiguous in tensor order, each tensor padded
  for (const auto& t : tensors_) {
    h.str(t.info.name);
    h.le<uint32_t>(static_cast<uint32_t>(t.info.ne.size()));
    for (int64_t d : t.info.ne) h.le<uint64_t>(static_cast<uint64_t>(d));
    h.le<uint32_t>(static_cast<uint32_t>(t.info.type));
    h.le<uint64_t>(offset);
    offset += pad_to(t.info.nbytes, alignment_);
  }
  h.b.resize(pad_to(h.b.size(), alignment_), '\0');
  return std::move(h.b);
}

namespace {

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw FormatError(path, "write failed: " + files::write_error_reason());
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void pwrite_all(int fd, const void* data, size_t n, uint64_t at, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw FormatError(path, "write failed: " + files::write_error_reason());
    p += w;
    at += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
}

// Moves n bytes of the file from offset `from` to offset `to` (the ranges may overlap): from the
// end when moving up, from the start when moving down.
void move_bytes(int fd, uint64_t from, uint64_t to, uint64_t n, const std::string& path) {
  std::vector<char> buf(size_t{1} << 20);
  for (uint64_t done = 0; done < n;) {
    const uint64_t len = std::min<uint64_t>(buf.size(), n - done);
    const uint64_t at = to > from ? n - done - len : done;
    uint64_t got = 0;
    while (got < len) {
      const ssize_t r = ::pread(fd, buf.data() + got, len - got, static_cast<off_t>(from + at + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw FormatError(path, std::string("read back failed: ") + std::strerror(errno));
      got += static_cast<uint64_t>(r);
    }
    pwrite_all(fd, buf.data(), len, to + at, path);
    done += len;
  }
}

}  // namespace

void GgufWriter::open_stream(const std::string& path) {
  if (fd_ >= 0) throw std::logic_error("GGUF stream to " + path_ + " is already open");
  path_ = path;
  tmp_ = path + ".tmp";
  files::track_temporary(tmp_);
  fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);  // read: commit() may move the data
  if (fd_ < 0) {
    files::untrack_temporary(tmp_);
    throw FormatError(tmp_, std::string("cannot open for writing: ") + std::strerror(errno));
  }
  // Room for the header as it stands; types and offsets have fixed sizes, so only metadata
  // changed before commit() can make it differ (commit() then moves the data).
  header_room_ = header().size();
  if (::lseek(fd_, static_cast<off_t>(header_room_), SEEK_SET) < 0) {
    abandon();
    throw FormatError(tmp_, std::string("cannot seek: ") + std::strerror(errno));
  }
  streamed_ = 0;
  data_bytes_ = 0;
  tensor_written_ = 0;
}

void GgufWriter::stream_data(const void* data, size_t n) {
  if (fd_ < 0) throw std::logic_error("GGUF stream is not open");
  if (streamed_ >= tensors_.size()) throw std::logic_error("GGUF stream: more data than declared tensors");
  write_all(fd_, data, n, tmp_);
  tensor_written_ += n;
}

void GgufWriter::rewind_tensor() {
  if (fd_ < 0) throw std::logic_error("GGUF stream is not open");
  const off_t start = static_cast<off_t>(header_room_ + data_bytes_);
  if (::ftruncate(fd_, start) != 0 || ::lseek(fd_, start, SEEK_SET) < 0)
    throw FormatError(tmp_, std::string("cannot rewind: ") + std::strerror(errno));
  tensor_written_ = 0;
}

void GgufWriter::end_tensor() {
  if (fd_ < 0 || streamed_ >= tensors_.size()) throw std::logic_error("GGUF stream: end_tensor without a tensor");
  const GgufTensorInfo& info = tensors_[streamed_].info;
  if (tensor_written_ != info.nbytes)
    throw std::logic_error("GGUF tensor '" + info.name + "': " + std::to_string(tensor_written_) + " bytes streamed, " +
                           ggml_type_name(info.type) + " needs " + std::to_string(info.nbytes));
  const uint64_t padded = pad_to(info.nbytes, alignment_);
  const std::string zeros(static_cast<size_t>(padded - info.nbytes), '\0');
  write_all(fd_, zeros.data(), zeros.size(), tmp_);
  data_bytes_ += padded;
  tensor_written_ = 0;
  ++streamed_;
}

uint64_t GgufWriter::commit() {
  if (fd_ < 0) throw std::logic_error("GGUF stream is not open");
  if (streamed_ != tensors_.size())
    throw std::logic_error("GGUF stream: " + std::to_string(streamed_) + " of " + std::to_string(tensors_.size()) +
                           " tensors written");
  try {
    const std::string h = header();
    if (h.size() == header_room_) {
      pwrite_all(fd_, h.data(), h.size(), 0, tmp_);
    } else {  // metadata grew or shrank after the data was placed: move the data behind the new header
      move_bytes(fd_, header_room_, h.size(), data_bytes_, tmp_);
      pwrite_all(fd_, h.data(), h.size(), 0, tmp_);
      if (::ftruncate(fd_, static_cast<off_t>(h.size() + data_bytes_)) != 0)
        throw FormatError(tmp_, "write failed: " + files::write_error_reason());
    }
    if (::close(fd_) != 0) {
      fd_ = -1;
      throw FormatError(tmp_, "write failed: " + files::write_error_reason());
    }
    fd_ = -1;
    fs::rename(tmp_, path_);
  } catch (...) {
    abandon();
    throw;
  }
  files::untrack_temporary(tmp_);
  tmp_.clear();
  return header().size() + data_bytes_;
}

void GgufWriter::abandon() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (tmp_.empty()) return;
  std::error_code ec;
  fs::remove(tmp_, ec);
  files::untrack_temporary(tmp_);
  tmp_.clear();
}

uint64_t GgufWriter::write(const std::string& path) {
  for (const auto& t : tensors_)
    if (t.data.size() != t.info.nbytes) throw std::logic_error("GGUF tensor '" + t.info.name + "' has no data to write");
  open_stream(path);
  try {
    for (const auto& t : tensors_) {
      stream_data(t.data.data(), t.data.size());
      end_tensor();
    }
  } catch (...) {
    abandon();
    throw;
  }
  return commit();
}

// ---- reader ----------------------------------------------------------------------------------
struct GgufFile::Mapping {
  explicit Mapping(const std::string& path) : file(path) {}
  io::MappedFile file;
};

GgufFile::~GgufFile() = default;

uint64_t GgufFile::file_size() const { return map_->file.size(); }

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::shared_ptr<GgufFile> g(new GgufFile());
  g->path_ = path;
  g->map_ = std::make_unique<Mapping>(path);
  In in{path, g->map_->file.data(), g->map_->file.size()};
  in.need(4, "magic");
  if (std::memcmp(in.p, "GGUF", 4) != 0) throw FormatError(path, 0, "bad magic: not a GGUF file (expected \"GGUF\")");
  in.off = 4;
  g->version_ = in.le<uint32_t>("version");
  if (g->version_ != 2 && g->version_ != 3)
    throw FormatError(path, 4, "unsupported GGUF version " + std::to_string(g->version_) + " (expected 2 or 3)");
  const uint64_t n_tensors = in.le<uint64_t>("tensor_count");
  const uint64_t n_kv = in.le<uint64_t>("kv_count");
  if (n_tensors > kMaxCount || n_tensors > in.left() / 8)
    throw FormatError(path, 8, "tensor_count " + std::to_string(n_tensors) + " exceeds the file");
  if (n_kv > kMaxCount || n_kv > in.left() / 8)
    throw FormatError(path, 16, "kv_count " + std::to_string(n_kv) + " exceeds the file");
  for (uint64_t k = 0; k < n_kv; ++k) {
    const uint64_t at = in.off;
    std::string key = in.str("key " + std::to_string(k));
    if (g->kv_index_.count(key)) throw FormatError(path, at, "duplicate key '" + key + "'");
    GgufValue v = in.value("key '" + key + "'");
    g->kv_index_[key] = g->kv_.size();
    g->kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = g->find("general.alignment")) {
    if (a->type != GgufType::kUint32)
      throw FormatError(path, "key 'general.alignment' has type " + std::string(gguf_type_name(a->type)) +
                                  ", expected UINT32");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      throw FormatError(path, "general.alignment " + std::to_string(a->u) + " is not a power of two");
    g->alignment_ = static_cast<uint32_t>(a->u);
  }
  uint64_t expected_offset = 0;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const uint64_t at = in.off;
    GgufTensorInfo t;
    t.name = in.str("tensor " + std::to_string(k) + " name");
    if (t.name.size() > kMaxNameBytes) throw FormatError(path, at, "tensor name '" + t.name + "' is longer than 63 bytes");
    if (g->tensor_index_.count(t.name)) throw FormatError(path, at, "duplicate tensor '" + t.name + "'");
    const uint32_t n_dims = in.le<uint32_t>("tensor '" + t.name + "' n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      throw FormatError(path, at, "tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = in.le<uint64_t>("tensor '" + t.name + "' ne");
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (ne != 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne))
        throw FormatError(path, at, "tensor '" + t.name + "' element count overflows");
      numel *= ne;
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    const uint64_t type_at = in.off;
    const uint32_t type = in.le<uint32_t>("tensor '" + t.name + "' type");
    if (!ggml_type_known(type))
      throw FormatError(path, type_at, "tensor '" + t.name + "' has unsupported ggml type " + std::to_string(type));
    t.type = static_cast<GgmlType>(type);
    if (t.ne[0] % ggml_block_size(t.type) != 0)
      throw FormatError(path, at, "tensor '" + t.name + "': row length " + std::to_string(t.ne[0]) +
                                      " is not a multiple of the " + ggml_type_name(t.type) + " block size " +
                                      std::to_string(ggml_block_size(t.type)));
    t.offset = in.le<uint64_t>("tensor '" + t.name + "' offset");
    const uint64_t row_bytes = ggml_row_bytes(t.type, t.ne[0]);
    const uint64_t rows = numel / std::max<uint64_t>(1, static_cast<uint64_t>(t.ne[0]));
    // Sizes beyond the 64-bit range would wrap to a small number and pass the bounds check below.
    constexpr uint64_t kMaxBytes = uint64_t{1} << 62;
    if (rows != 0 && row_bytes > kMaxBytes / rows)
      throw FormatError(path, at, "tensor '" + t.name + "' would hold more than 2^62 bytes (its dimensions are corrupt)");
    t.nbytes = row_bytes * rows;
    if (t.ne[0] == 0) t.nbytes = 0;
    if (t.offset > kMaxBytes)
      throw FormatError(path, at, "tensor '" + t.name + "' has offset " + std::to_string(t.offset) + " beyond 2^62");
    if (t.offset != expected_offset)
      throw FormatError(path, at, "tensor '" + t.name + "' has offset " + std::to_string(t.offset) + ", expected " +
                                      std::to_string(expected_offset));
    expected_offset = pad_to(t.offset + t.nbytes, g->alignment_);
    g->tensor_index_[t.name] = g->tensors_.size();
    g->tensors_.push_back(std::move(t));
  }
  g->data_offset_ = pad_to(in.off, g->alignment_);
  for (const auto& t : g->tensors_) {
    const uint64_t begin = g->data_offset_ + t.offset;
    if (begin < t.offset || begin + t.nbytes < begin || begin + t.nbytes > in.size)
      throw FormatError(path, begin, "tensor '" + t.name + "' data (" + std::to_string(t.nbytes) +
                                         " bytes) runs past the end of the file (" + std::to_string(in.size) + " bytes)");
  }
  return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& info) const {
  return map_->file.data() + data_offset_ + info.offset;
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& info) const {
  std::vector<float> out(static_cast<size_t>(info.numel()));
  if (out.empty()) return out;
  const int64_t row = info.ne[0];
  const uint64_t row_bytes = ggml_row_bytes(info.type, row);
  const uint8_t* p = tensor_data(info);
  for (int64_t r = 0; r < info.numel() / row; ++r) dequantize_row(info.type, p + r * row_bytes, row, out.data() + r * row);
  return out;
}

}  // namespace edgerazor::exporter
