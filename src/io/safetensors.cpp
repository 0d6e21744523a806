// safetensors: mmap reader with full header validation, and the writer (see the header for the
// byte layout). Torch-free.
#include "edgerazor/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"

namespace edgerazor::io {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // safetensors' MAX_HEADER_SIZE

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kF64, "F64", 8}, {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},  {DType::kI8, "I8", 1},   {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};
// Valid safetensors dtypes we do not read.
const std::set<std::string> kKnownUnsupported = {"F4",      "F6_E2M3", "F6_E3M2",     "F8_E5M2",
                                                 "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
                                                 "U16",     "U32",     "U64",         "C64"};

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

size_t dtype_size(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

const char* dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

std::optional<DType> dtype_from_name(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

int64_t TensorEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ------------------------------------------------------------------------------------------
MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FormatError(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FormatError(path, "not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw FormatError(path, std::string("cannot map: ") + std::strerror(err));
    }
    data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

void MappedFile::release(uint64_t offset, uint64_t length) const {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t begin = (offset + page - 1) / page * page, end = std::min(offset + length, size_) / page * page;
  if (data_ && begin < end) ::madvise(data_ + begin, end - begin, MADV_DONTNEED);  // advice: failure is harmless
}

// ------------------------------------------------------------------------------------------
std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto out = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  out->file_ = std::make_shared<MappedFile>(path);
  const uint64_t size = out->file_->size();
  const uint8_t* bytes = out->file_->data();
  if (size < 8)
    throw FormatError(path, 0, "file is " + std::to_string(size) +
                                   " bytes, too short for the 8-byte header length (truncated?)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeaderBytes)
    throw FormatError(path, 0, "header length " + std::to_string(n) + " exceeds the limit of " +
                                   std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file?)");
  if (n > size - 8)
    throw FormatError(path, 0, "header length " + std::to_string(n) + " runs past the end of the file (" +
                                   std::to_string(size) + " bytes; truncated?)");
  if (n < 2 || bytes[8] != '{')
    throw FormatError(path, 8, "header does not start with '{' (not a safetensors file?)");
  out->data_start_ = 8 + n;
  const uint64_t data_size = size - out->data_start_;

  // Parse, rejecting duplicate top-level keys (nlohmann keeps the last one silently).
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(bytes + 8, bytes + 8 + n, on_event);
  } catch (const json::parse_error& e) {
    throw FormatError(path, 8 + e.byte, std::string("header is not valid JSON: ") + e.what());
  } catch (const json::out_of_range& e) {  // a number too large for a double
    throw FormatError(path, 8, std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) throw FormatError(path, 8, "tensor '" + duplicate + "' appears twice in the header");
  if (!header.is_object()) throw FormatError(path, 8, "header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw FormatError(path, 8, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw FormatError(path, 8, "__metadata__ value '" + m.key() + "' is not a string");
        out->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string what = "tensor '" + name + "'";
    if (!v.is_object()) throw FormatError(path, 8, what + " is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string())
      throw FormatError(path, 8, what + " has no string 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array())
      throw FormatError(path, 8, what + " has no 'shape' array");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      throw FormatError(path, 8, what + " has no 'data_offsets' pair");
    TensorEntry e;
    e.name = name;
    const std::string dt = v["dtype"].get<std::string>();
    const auto dtype = dtype_from_name(dt);
    if (!dtype) {
      if (kKnownUnsupported.count(dt)) throw FormatError(path, 8, what + " has unsupported dtype " + dt);
      throw FormatError(path, 8, what + " has unknown dtype '" + dt + "'");
    }
    e.dtype = *dtype;
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) throw FormatError(path, 8, what + " has a shape entry that is not a non-negative integer");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (dim != 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim))
        throw FormatError(path, 8, what + " has a shape whose element count overflows");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto& o : v["data_offsets"])
      if (!o.is_number_unsigned()) throw FormatError(path, 8, what + " has a data offset that is not a non-negative integer");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.end < e.begin)
      throw FormatError(path, 8, what + ": end offset " + std::to_string(e.end) + " < begin offset " +
                                     std::to_string(e.begin));
    const uint64_t size_of = dtype_size(e.dtype);
    if (numel > std::numeric_limits<uint64_t>::max() / size_of || e.end - e.begin != numel * size_of)
      throw FormatError(path, 8, what + " with dtype " + dt + " and shape " + shape_str(e.shape) + " needs " +
                                     std::to_string(numel * size_of) + " bytes, but its offsets span " +
                                     std::to_string(e.end - e.begin));
    if (e.end > data_size)
      throw FormatError(path, out->data_start_ + e.begin,
                        what + ": end offset " + std::to_string(e.end) + " > data size " +
                            std::to_string(data_size) + " (truncated?)");
    out->tensors_.push_back(std::move(e));
  }
  std::sort(out->tensors_.begin(), out->tensors_.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (const auto& e : out->tensors_) {
    if (e.begin != expected)
      throw FormatError(path, out->data_start_ + e.begin,
                        "tensor '" + e.name + "' starts at offset " + std::to_string(e.begin) + ", expected " +
                            std::to_string(expected) + (e.begin < expected ? " (overlaps the previous tensor)" : " (hole before it)"));
    expected = e.end;
  }
  if (expected != data_size)
    throw FormatError(path, out->data_start_ + expected,
                      "tensors end at data offset " + std::to_string(expected) + " but the data section is " +
                          std::to_string(data_size) + " bytes (trailing garbage or truncated)");
  for (size_t i = 0; i < out->tensors_.size(); ++i) out->index_[out->tensors_[i].name] = i;
  return out;
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ------------------------------------------------------------------------------------------
SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& path_in) {
  fs::path path(path_in);
  if (fs::is_directory(path)) {
    if (fs::exists(path / "model.safetensors"))
      path /= "model.safetensors";
    else if (fs::exists(path / "model.safetensors.index.json"))
      path /= "model.safetensors.index.json";
    else
      throw FormatError(path_in, "folder has neither model.safetensors nor model.safetensors.index.json");
  }
  SafetensorsCheckpoint out;
  const std::string p = path.string();
  if (p.size() >= 5 && p.compare(p.size() - 5, 5, ".json") == 0) {
    std::ifstream in(p);
    if (!in) throw FormatError(p, "cannot open the shard index");
    json index;
    try {
      index = json::parse(in);
    } catch (const json::parse_error& e) {
      throw FormatError(p, e.byte, std::string("not valid JSON: ") + e.what());
    } catch (const json::out_of_range& e) {  // a number too large for a double
      throw FormatError(p, std::string("not valid JSON: ") + e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw FormatError(p, "no 'weight_map' object");
    std::map<std::string, size_t> shard_ids;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw FormatError(p, "weight_map['" + it.key() + "'] is not a file name");
      const std::string shard = it.value().get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "..")
        throw FormatError(p, "weight_map['" + it.key() + "'] = '" + shard + "' is not a file name in the folder");
      auto sid = shard_ids.find(shard);
      if (sid == shard_ids.end()) {
        out.files_.push_back(SafetensorsFile::open((path.parent_path() / shard).string()));
        sid = shard_ids.emplace(shard, out.files_.size() - 1).first;
      }
      const TensorEntry* entry = out.files_[sid->second]->find(it.key());
      if (!entry) throw FormatError(out.files_[sid->second]->path(), "tensor '" + it.key() + "' listed in " + p + " is missing");
      out.map_[it.key()] = {sid->second, entry};
    }
  } else {
    out.files_.push_back(SafetensorsFile::open(p));
    for (const auto& e : out.files_[0]->tensors()) out.map_[e.name] = {0, &e};
  }
  return out;
}

std::optional<SafetensorsCheckpoint::Located> SafetensorsCheckpoint::find(const std::string& name) const {
  auto it = map_.find(name);
  if (it == map_.end()) return std::nullopt;
  return Located{files_[it->second.first].get(), it->second.second};
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : map_) out.push_back(kv.first);
  return out;
}

// ------------------------------------------------------------------------------------------
namespace {

void write_file_atomically_parts(const std::string& tmp, const std::string& header,
                                 const std::vector<const TensorBytes*>& order) {
  files::track_temporary(tmp);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    files::untrack_temporary(tmp);
    throw FormatError(tmp, std::string("cannot create: ") + std::strerror(errno));
  }
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(header.data(), 1, header.size(), f) == header.size();
  for (const TensorBytes* t : order)
    if (ok && t->nbytes) ok = std::fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
  ok = ok && std::fflush(f) == 0;
  std::string reason = ok ? "" : files::write_error_reason();
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    reason = files::write_error_reason();
  }
  if (!ok) {
    std::remove(tmp.c_str());
    files::untrack_temporary(tmp);
    throw FormatError(tmp, "write failed: " + reason);
  }
}

// Returns the serialized header and the tensor order.
std::string build_header(const std::string& path, const std::vector<TensorBytes>& tensors,
                         const std::map<std::string, std::string>& metadata,
                         std::vector<const TensorBytes*>& order) {
  order.clear();
  std::set<std::string> names;
  for (const auto& t : tensors) {
    if (!names.insert(t.name).second) throw FormatError(path, "tensor '" + t.name + "' given twice");
    if (t.name == "__metadata__") throw FormatError(path, "'__metadata__' is not a valid tensor name");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw FormatError(path, "tensor '" + t.name + "' has a negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * dtype_size(t.dtype) != t.nbytes)
      throw FormatError(path, "tensor '" + t.name + "': " + std::to_string(t.nbytes) + " bytes given, shape " +
                                  shape_str(t.shape) + " needs " + std::to_string(numel * dtype_size(t.dtype)));
    order.push_back(&t);
  }
  // Like the Rust serializer: descending dtype alignment, then name.
  std::sort(order.begin(), order.end(), [](const TensorBytes* a, const TensorBytes* b) {
    const size_t sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorBytes* t : order) {
    header[t->name] = {{"dtype", dtype_name(t->dtype)}, {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->nbytes}}};
    offset += t->nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// Removes shards of an earlier save ("model-00001-of-00003.safetensors") not in keep.
void remove_stale_shards(const fs::path& folder, const std::vector<std::string>& keep) {
  for (const auto& item : fs::directory_iterator(folder)) {
    const std::string name = item.path().filename().string();
    const bool is_shard = name.size() == 32 && name.rfind("model-", 0) == 0 &&
                          name.compare(11, 4, "-of-") == 0 && name.compare(20, 12, ".safetensors") == 0;
    if (is_shard && std::find(keep.begin(), keep.end(), name) == keep.end()) fs::remove(item.path());
  }
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorBytes*> order;
  const std::string header = build_header(path, tensors, metadata, order);
  const std::string tmp = path + ".tmp";
  write_file_atomically_parts(tmp, header, order);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  files::untrack_temporary(tmp);
  if (ec) {
    fs::remove(tmp);
    throw FormatError(path, "cannot rename " + tmp + ": " + ec.message());
  }
}

std::vector<std::string> write_safetensors_checkpoint(const std::string& dir,
                                                      const std::vector<TensorBytes>& tensors,
                                                      const std::map<std::string, std::string>& metadata,
                                                      uint64_t max_shard_bytes) {
  fs::create_directories(dir);
  uint64_t total = 0;
  for (const auto& t : tensors) total += t.nbytes;
  const fs::path folder(dir);
  if (max_shard_bytes == 0 || total <= max_shard_bytes) {
    write_safetensors((folder / "model.safetensors").string(), tensors, metadata);
    fs::remove(folder / "model.safetensors.index.json");
    remove_stale_shards(folder, {});
    return {"model.safetensors"};
  }
  // Greedy packing in name order (a tensor larger than the limit gets a shard of its own).
  std::vector<const TensorBytes*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  std::vector<std::vector<TensorBytes>> shards(1);
  uint64_t in_shard = 0;
  for (const TensorBytes* t : sorted) {
    if (!shards.back().empty() && in_shard + t->nbytes > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(*t);
    in_shard += t->nbytes;
  }
  const size_t n = shards.size();
  char buf[64];
  std::vector<std::string> names;
  json weight_map = json::object();
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", i + 1, n);
    names.push_back(buf);
    for (const auto& t : shards[i]) weight_map[t.name] = names.back();
  }
  std::vector<std::string> written;
  try {
    for (size_t i = 0; i < n; ++i) {
      // Written under a .part name, renamed only when every shard exists.
      write_safetensors((folder / (names[i] + ".part")).string(), shards[i], metadata);
      written.push_back(names[i]);
    }
  } catch (...) {
    for (const auto& w : written) fs::remove(folder / (w + ".part"));
    throw;
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const fs::path index_path = folder / "model.safetensors.index.json";
  {
    std::ofstream out(index_path.string() + ".tmp");
    out << index.dump(2) << "\n";
    if (!out.flush()) throw FormatError(index_path.string() + ".tmp", "write failed");
  }
  for (const auto& w : written) fs::rename(folder / (w + ".part"), folder / w);
  fs::rename(index_path.string() + ".tmp", index_path);
  fs::remove(folder / "model.safetensors");
  remove_stale_shards(folder, names);
  names.push_back("model.safetensors.index.json");
  return names;
}

}  // namespace edgerazor::io
