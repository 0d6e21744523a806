// Token shards: mmap reader with checked header/sizes, streaming writer (.tmp + rename).
#include "edgerazor/data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"

namespace edgerazor::data {
namespace {

uint64_t u64_from(int32_t lo, int32_t hi) {
  return static_cast<uint64_t>(static_cast<uint32_t>(lo)) | (static_cast<uint64_t>(static_cast<uint32_t>(hi)) << 32);
}

uint64_t round_up8(uint64_t x) { return (x + 7) / 8 * 8; }

struct Layout {
  uint64_t tokens_at = kShardHeaderBytes, mask_at = 0, docs_at = 0, total = 0;
};

// Checks the header against the file size; returns the section offsets.
Layout check_header(const std::string& path, const int32_t* h, uint64_t file_bytes, ShardInfo& info) {
  info.path = path;
  info.file_bytes = file_bytes;
  if (h[0] != kShardMagic)
    throw FormatError(path, 0, "bad magic (not an edgerazor token shard; expected \"ERTK\")");
  info.version = h[1];
  if (h[1] != 1 && h[1] != 2)
    throw FormatError(path, 4, "unsupported shard version " + std::to_string(h[1]) + " (this build reads 1 and 2)");
  info.bytes_per_token = h[2];
  if (h[2] != 2 && h[2] != 4)
    throw FormatError(path, 8, "bytes per token must be 2 or 4, got " + std::to_string(h[2]));
  const uint64_t width = static_cast<uint64_t>(h[2]);
  const uint64_t n = u64_from(h[4], h[5]);
  info.tokens = n;
  const uint64_t body = file_bytes - kShardHeaderBytes;
  Layout l;
  if (h[1] == 1) {
    info.documents = n > 0 ? 1 : 0;
    if (n > body / width || n * width != body)
      throw FormatError(path, 16, "header says " + std::to_string(n) + " tokens (" + std::to_string(n * width) +
                                      " bytes) but " + std::to_string(body) + " bytes follow the header");
    l.mask_at = l.docs_at = l.total = file_bytes;
    return l;
  }
  if ((h[3] & ~kShardFlagLabelMask) != 0)
    throw FormatError(path, 12, "unknown flags " + std::to_string(h[3]) + " (only bit 0, label mask, is defined)");
  info.has_label_mask = (h[3] & kShardFlagLabelMask) != 0;
  const uint64_t d = u64_from(h[6], h[7]);
  info.documents = d;
  info.vocab_size = h[8];
  info.max_token_id = h[9];
  info.eos_id = h[10];
  if (h[8] < 0) throw FormatError(path, 32, "negative vocab size " + std::to_string(h[8]));
  if (n > body / width)
    throw FormatError(path, 16, "header says " + std::to_string(n) + " tokens (" + std::to_string(n) + " x " +
                                    std::to_string(width) + " bytes) but only " + std::to_string(body) +
                                    " bytes follow the header (truncated?)");
  if (d > n) throw FormatError(path, 24, "header says " + std::to_string(d) + " documents but only " + std::to_string(n) + " tokens");
  if (h[8] > 0 && h[9] >= h[8])
    throw FormatError(path, 36, "largest token id " + std::to_string(h[9]) + " is outside the vocabulary (" + std::to_string(h[8]) + ")");
  l.mask_at = kShardHeaderBytes + n * width;
  const uint64_t mask_end = l.mask_at + (info.has_label_mask ? n : 0);
  l.docs_at = round_up8(mask_end);
  l.total = l.docs_at + 8 * (d + 1);
  if (file_bytes != l.total)
    throw FormatError(path, file_bytes < l.total ? file_bytes : l.total,
                      "file is " + std::to_string(file_bytes) + " bytes but the header (" + std::to_string(n) + " tokens, " +
                          std::to_string(d) + " documents" + (info.has_label_mask ? ", label mask" : "") + ") needs " +
                          std::to_string(l.total) + (file_bytes < l.total ? " (truncated?)" : ""));
  return l;
}

void read_exact(int fd, void* buf, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, static_cast<char*>(buf) + got, n - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw FormatError(path, got, "read failed");
    got += static_cast<size_t>(r);
  }
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

uint64_t open_and_stat(const std::string& path, Fd& f) {
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) throw FormatError(path, std::string("cannot open token shard: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) throw FormatError(path, "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kShardHeaderBytes)
    throw FormatError(path, 0, "file is " + std::to_string(size) + " bytes, shorter than the 1024-byte header");
  return size;
}

}  // namespace

ShardInfo read_shard_info(const std::string& path) {
  Fd f;
  const uint64_t size = open_and_stat(path, f);
  int32_t h[256];
  read_exact(f.fd, h, sizeof(h), path);
  ShardInfo info;
  check_header(path, h, size, info);
  return info;
}

ShardReader::ShardReader(const std::string& path) {
  Fd f;
  const uint64_t size = open_and_stat(path, f);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (p == MAP_FAILED) throw FormatError(path, std::string("cannot mmap: ") + std::strerror(errno));
  map_ = static_cast<const uint8_t*>(p);
  map_bytes_ = size;
  try {
    const Layout l = check_header(path, reinterpret_cast<const int32_t*>(map_), size, info_);
    tokens_ = map_ + l.tokens_at;
    if (info_.has_label_mask) mask_ = map_ + l.mask_at;
    if (info_.version >= 2) {
      doc_offsets_ = reinterpret_cast<const uint64_t*>(map_ + l.docs_at);
      const uint64_t d = info_.documents;
      if (doc_offsets_[0] != 0) throw FormatError(path, l.docs_at, "document table must start at 0, got " + std::to_string(doc_offsets_[0]));
      for (uint64_t i = 1; i <= d; ++i)
        if (doc_offsets_[i] <= doc_offsets_[i - 1] || doc_offsets_[i] > info_.tokens)
          throw FormatError(path, l.docs_at + 8 * i,
                            "document offset " + std::to_string(i) + " is " + std::to_string(doc_offsets_[i]) +
                                ", expected > " + std::to_string(doc_offsets_[i - 1]) + " and <= " + std::to_string(info_.tokens));
      if (doc_offsets_[d] != info_.tokens)
        throw FormatError(path, l.docs_at + 8 * d,
                          "document table ends at token " + std::to_string(doc_offsets_[d]) + " but the shard has " +
                              std::to_string(info_.tokens) + " tokens");
    }
    ::madvise(const_cast<uint8_t*>(map_), map_bytes_, MADV_WILLNEED);
  } catch (...) {
    close();
    throw;
  }
}

ShardReader::~ShardReader() { close(); }

ShardReader::ShardReader(ShardReader&& o) noexcept { *this = std::move(o); }

ShardReader& ShardReader::operator=(ShardReader&& o) noexcept {
  if (this != &o) {
    close();
    info_ = std::move(o.info_);
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    tokens_ = std::exchange(o.tokens_, nullptr);
    mask_ = std::exchange(o.mask_, nullptr);
    doc_offsets_ = std::exchange(o.doc_offsets_, nullptr);
  }
  return *this;
}

void ShardReader::close() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

int32_t ShardReader::token(uint64_t i) const {
  if (info_.bytes_per_token == 2) {
    uint16_t v;
    std::memcpy(&v, tokens_ + 2 * i, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, tokens_ + 4 * i, 4);
  return static_cast<int32_t>(v);
}

bool ShardReader::label(uint64_t i) const { return mask_ == nullptr || mask_[i] != 0; }

void ShardReader::copy_tokens(uint64_t begin, uint64_t end, int64_t* out) const {
  if (info_.bytes_per_token == 2) {
    const auto* p = reinterpret_cast<const uint16_t*>(tokens_);
    for (uint64_t i = begin; i < end; ++i) *out++ = p[i];
  } else {
    const auto* p = reinterpret_cast<const uint32_t*>(tokens_);
    for (uint64_t i = begin; i < end; ++i) *out++ = p[i];
  }
}

void ShardReader::copy_labels(uint64_t begin, uint64_t end, int64_t* out_labels, const int64_t* ids) const {
  for (uint64_t i = begin; i < end; ++i, ++ids) *out_labels++ = (mask_ == nullptr || mask_[i] != 0) ? *ids : -100;
}

uint64_t ShardReader::document_begin(uint64_t i) const {
  if (doc_offsets_) return doc_offsets_[i];
  return i == 0 ? 0 : info_.tokens;
}

int64_t ShardReader::verify_token_ids() const {
  int64_t max_id = -1;
  uint64_t at = 0;
  for (uint64_t i = 0; i < info_.tokens; ++i) {
    const int64_t t = token(i);
    if (t > max_id) {
      max_id = t;
      at = i;
    }
  }
  auto fail = [&](const std::string& limit) {
    throw FormatError(info_.path, "token " + std::to_string(at) + " has id " + std::to_string(max_id) + ", beyond " + limit +
                                      " (the file is damaged or was edited)");
  };
  if (info_.vocab_size > 0 && max_id >= info_.vocab_size)
    fail("the header's vocabulary of " + std::to_string(info_.vocab_size));
  if (max_id > info_.max_token_id) fail("the header's largest id " + std::to_string(info_.max_token_id));
  return max_id;
}

uint64_t ShardReader::count_label_tokens() const {
  if (!mask_) return info_.tokens;
  uint64_t c = 0;
  for (uint64_t i = 0; i < info_.tokens; ++i) c += mask_[i] != 0;
  return c;
}

// ---------------------------------------------------------------------------------------------

ShardWriter::ShardWriter(std::string path, const ShardWriterOptions& options) : path_(std::move(path)), options_(options) {
  if (options_.bytes_per_token == 0) options_.bytes_per_token = options_.vocab_size > 65536 ? 4 : 2;
  if (options_.bytes_per_token != 2 && options_.bytes_per_token != 4)
    throw FormatError(path_, "bytes per token must be 2 or 4, got " + std::to_string(options_.bytes_per_token));
  if (options_.bytes_per_token == 2 && options_.vocab_size > 65536)
    throw FormatError(path_, "a vocabulary of " + std::to_string(options_.vocab_size) + " ids needs 4 bytes per token");
  const std::string tmp = path_ + ".tmp";
  files::track_temporary(tmp);
  if (options_.label_mask) files::track_temporary(path_ + ".mask.tmp");
  tokens_file_ = std::fopen(tmp.c_str(), "wb");
  if (!tokens_file_) throw FormatError(tmp, std::string("cannot create: ") + std::strerror(errno));
  const std::vector<char> zeros(kShardHeaderBytes, 0);
  if (std::fwrite(zeros.data(), 1, zeros.size(), tokens_file_) != zeros.size()) {
    const std::string reason = files::write_error_reason();
    discard();
    throw FormatError(tmp, "write failed: " + reason);
  }
  if (options_.label_mask) {
    const std::string mtmp = path_ + ".mask.tmp";
    mask_file_ = std::fopen(mtmp.c_str(), "w+b");
    if (!mask_file_) {
      discard();
      throw FormatError(mtmp, std::string("cannot create: ") + std::strerror(errno));
    }
  }
}

ShardWriter::~ShardWriter() {
  if (!finished_) discard();
}

void ShardWriter::discard() {
  if (tokens_file_) std::fclose(tokens_file_);
  if (mask_file_) std::fclose(mask_file_);
  tokens_file_ = mask_file_ = nullptr;
  std::remove((path_ + ".tmp").c_str());
  std::remove((path_ + ".mask.tmp").c_str());
  files::untrack_temporary(path_ + ".tmp");
  files::untrack_temporary(path_ + ".mask.tmp");
}

void ShardWriter::add_document(const std::vector<int32_t>& ids, const std::vector<uint8_t>& labels) {
  if (finished_) throw std::logic_error("ShardWriter::add_document after finish()");
  if (ids.empty()) return;
  if (!labels.empty() && labels.size() != ids.size())
    throw std::invalid_argument("ShardWriter::add_document: " + std::to_string(labels.size()) + " labels for " +
                                std::to_string(ids.size()) + " ids");
  const int64_t limit = options_.vocab_size > 0 ? options_.vocab_size : (options_.bytes_per_token == 2 ? 65536 : (int64_t{1} << 31));
  for (int32_t id : ids)
    if (id < 0 || id >= limit)
      throw FormatError(path_, "token id " + std::to_string(id) + " in document " + std::to_string(documents()) +
                                   " is outside [0, " + std::to_string(limit) + ")");
  uint64_t labelled = ids.size();
  if (!labels.empty()) {
    labelled = 0;
    for (uint8_t l : labels) labelled += l != 0;
  }
  if (labelled != ids.size() && !options_.label_mask)
    throw std::logic_error("ShardWriter: a document with unlabelled tokens needs options.label_mask");
  bool ok;
  if (options_.bytes_per_token == 2) {
    std::vector<uint16_t> v(ids.begin(), ids.end());
    ok = std::fwrite(v.data(), 2, v.size(), tokens_file_) == v.size();
  } else {
    ok = std::fwrite(ids.data(), 4, ids.size(), tokens_file_) == ids.size();
  }
  if (mask_file_) {
    std::vector<uint8_t> m(ids.size(), 1);
    if (!labels.empty())
      for (size_t i = 0; i < m.size(); ++i) m[i] = labels[i] != 0;
    ok = ok && std::fwrite(m.data(), 1, m.size(), mask_file_) == m.size();
  }
  if (!ok) {
    const std::string reason = files::write_error_reason();
    discard();
    finished_ = true;
    throw FormatError(path_ + ".tmp", "write failed: " + reason);
  }
  for (int32_t id : ids) max_id_ = std::max<int64_t>(max_id_, id);
  tokens_ += ids.size();
  label_tokens_ += labelled;
  offsets_.push_back(tokens_);
}

ShardInfo ShardWriter::finish() {
  if (finished_) throw std::logic_error("ShardWriter::finish called twice");
  const std::string tmp = path_ + ".tmp";
  auto fail = [&](const std::string& msg) {
    discard();
    finished_ = true;
    throw FormatError(tmp, msg);
  };
  bool ok = true;
  uint64_t at = kShardHeaderBytes + tokens_ * options_.bytes_per_token;
  if (mask_file_) {
    ok = std::fflush(mask_file_) == 0 && std::fseek(mask_file_, 0, SEEK_SET) == 0;
    std::vector<char> buf(1 << 20);
    size_t n;
    while (ok && (n = std::fread(buf.data(), 1, buf.size(), mask_file_)) > 0)
      ok = std::fwrite(buf.data(), 1, n, tokens_file_) == n;
    at += tokens_;
  }
  const std::vector<char> zeros(round_up8(at) - at, 0);
  ok = ok && (zeros.empty() || std::fwrite(zeros.data(), 1, zeros.size(), tokens_file_) == zeros.size());
  ok = ok && std::fwrite(offsets_.data(), 8, offsets_.size(), tokens_file_) == offsets_.size();
  int32_t h[256] = {};
  h[0] = kShardMagic;
  h[1] = kShardVersion;
  h[2] = options_.bytes_per_token;
  h[3] = options_.label_mask ? kShardFlagLabelMask : 0;
  h[4] = static_cast<int32_t>(tokens_ & 0xFFFFFFFFu);
  h[5] = static_cast<int32_t>(tokens_ >> 32);
  const uint64_t d = documents();
  h[6] = static_cast<int32_t>(d & 0xFFFFFFFFu);
  h[7] = static_cast<int32_t>(d >> 32);
  h[8] = static_cast<int32_t>(options_.vocab_size);
  h[9] = static_cast<int32_t>(max_id_);
  h[10] = static_cast<int32_t>(options_.eos_id);
  ok = ok && std::fseek(tokens_file_, 0, SEEK_SET) == 0 && std::fwrite(h, sizeof(h), 1, tokens_file_) == 1;
  ok = ok && std::fflush(tokens_file_) == 0 && ::fsync(::fileno(tokens_file_)) == 0;
  if (!ok) fail("write failed: " + files::write_error_reason());
  ok = std::fclose(tokens_file_) == 0;
  tokens_file_ = nullptr;
  if (!ok) fail("close failed: " + files::write_error_reason());
  std::error_code ec;
  std::filesystem::rename(tmp, path_, ec);
  if (ec) fail("cannot rename to " + path_ + ": " + ec.message());
  discard();  // only the mask temporary is left
  finished_ = true;
  ShardInfo info;
  info.path = path_;
  info.bytes_per_token = options_.bytes_per_token;
  info.has_label_mask = options_.label_mask;
  info.tokens = tokens_;
  info.documents = d;
  info.vocab_size = options_.vocab_size;
  info.max_token_id = max_id_;
  info.eos_id = options_.eos_id;
  info.file_bytes = at + zeros.size() + 8 * offsets_.size();
  return info;
}

}  // namespace edgerazor::data
