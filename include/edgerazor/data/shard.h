// Implements: token shards, the files edgerazor-data writes and DataLoader reads: a versioned
// header, the token stream, an optional label-mask stream and a document table. Written through
// <path>.tmp + rename; read by mmap with every count checked against the file size. Torch-free.
//
// Byte layout, version 2 (little-endian; version 1 is the flat file of io/token_file.h, which the
// reader also accepts as one document with every token labelled):
//   [0, 1024)      256 x int32 header:
//                    [0] magic 0x4B545245 ("ERTK", as io/token_file.h)   [1] version = 2
//                    [2] bytes per token: 2 (uint16) or 4 (uint32)
//                    [3] flags: bit 0 = a label mask follows the tokens; other bits 0
//                    [4] token count n, low 32 bits      [5] n, high 32 bits
//                    [6] document count d, low 32 bits   [7] d, high 32 bits
//                    [8] tokenizer vocab size (0 = unknown)
//                    [9] largest token id in the file (-1 when n = 0)
//                    [10] EOS id appended after documents (-1 = none)
//                    rest 0
//   [1024, A)      n tokens, A = 1024 + n * bytes per token
//   [A, B)         flags bit 0: n bytes, 1 = this token carries a loss label, 0 = it does not;
//                  without the flag B = A and every token carries a label
//   [B, C)         zero padding to the next multiple of 8
//   [C, C+8(d+1))  d + 1 uint64 document offsets (in tokens): 0 = o_0 < o_1 < ... < o_d = n;
//                  document i is tokens [o_i, o_{i+1}) (documents are never empty)
//   The file size must be exactly C + 8(d+1).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace edgerazor::data {

inline constexpr int32_t kShardMagic = 0x4B545245;
inline constexpr int32_t kShardVersion = 2;
inline constexpr uint64_t kShardHeaderBytes = 1024;
inline constexpr int32_t kShardFlagLabelMask = 1;

struct ShardInfo {
  std::string path;
  int32_t version = kShardVersion;
  int32_t bytes_per_token = 2;
  bool has_label_mask = false;
  uint64_t tokens = 0;
  uint64_t documents = 0;
  int64_t vocab_size = 0;     // 0 = unknown
  int64_t max_token_id = -1;  // -1 = unknown or empty
  int64_t eos_id = -1;        // -1 = none
  uint64_t file_bytes = 0;
};

// A read-only memory-mapped shard. Validates header, sizes and the document table on open and
// throws FormatError(path, offset, ...) naming what is wrong. Move-only.
class ShardReader {
 public:
  explicit ShardReader(const std::string& path);
  ~ShardReader();
  ShardReader(ShardReader&& other) noexcept;
  ShardReader& operator=(ShardReader&& other) noexcept;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const ShardInfo& info() const { return info_; }
  uint64_t size() const { return info_.tokens; }
  uint64_t documents() const { return info_.documents; }
  int32_t token(uint64_t i) const;  // unchecked index
  bool label(uint64_t i) const;     // unchecked index; true for every token without a mask
  // Tokens [begin, end) appended to out; labels likewise (true = carries a label).
  void copy_tokens(uint64_t begin, uint64_t end, int64_t* out) const;
  void copy_labels(uint64_t begin, uint64_t end, int64_t* out_labels, const int64_t* ids) const;
  // Document i spans tokens [document_begin(i), document_begin(i + 1)).
  uint64_t document_begin(uint64_t i) const;
  // Counts label-carrying tokens (scans the mask; n when there is none).
  uint64_t count_label_tokens() const;
  // Scans every token: the largest id actually stored (-1 for an empty shard), and throws
  // FormatError naming the file and the token's index when it exceeds the header's max_token_id
  // or vocab_size (a damaged or hand-edited shard would otherwise fail deep inside an embedding).
  int64_t verify_token_ids() const;

 private:
  void close();
  ShardInfo info_;
  const uint8_t* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint8_t* tokens_ = nullptr;
  const uint8_t* mask_ = nullptr;
  const uint64_t* doc_offsets_ = nullptr;  // nullptr for version 1 (one document)
};

// Reads only the header and checks sizes (what `edgerazor-data info` prints).
ShardInfo read_shard_info(const std::string& path);

struct ShardWriterOptions {
  int32_t bytes_per_token = 0;  // 2 or 4; 0 = 2 when vocab_size <= 65536 (or unknown), else 4
  int64_t vocab_size = 0;       // recorded in the header; ids >= vocab_size are rejected when > 0
  int64_t eos_id = -1;          // recorded in the header
  bool label_mask = false;      // write the mask stream (else every token is labelled)
};

// Streams documents into <path>.tmp (tokens) and <path>.mask.tmp (mask), then finish() joins
// them, writes header and document table, fsyncs and renames to <path>. Destroying an
// unfinished writer removes the temporaries, so an error never leaves a partial output.
class ShardWriter {
 public:
  ShardWriter(std::string path, const ShardWriterOptions& options);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // One document. `labels` is empty (all labelled) or one flag per id (nonzero = labelled); a
  // mask with zeros needs options.label_mask. Empty documents are skipped. Throws FormatError on
  // a negative id or one that does not fit the width/vocabulary.
  void add_document(const std::vector<int32_t>& ids, const std::vector<uint8_t>& labels = {});
  ShardInfo finish();

  uint64_t tokens() const { return tokens_; }
  uint64_t documents() const { return offsets_.size() - 1; }
  uint64_t label_tokens() const { return label_tokens_; }

 private:
  void discard();
  std::string path_;
  ShardWriterOptions options_;
  std::FILE* tokens_file_ = nullptr;
  std::FILE* mask_file_ = nullptr;
  std::vector<uint64_t> offsets_{0};
  uint64_t tokens_ = 0, label_tokens_ = 0;
  int64_t max_id_ = -1;
  bool finished_ = false;
};

}  // namespace edgerazor::data
