// A flat token file: what `edgerazor-data encode` writes and `edgerazor-eval --tokens` reads
// (version 1 below; version-2 training shards from `edgerazor-data encode --split` are read too).
// Header-only and torch-free (edgerazor-data must not link torch).
//
// Byte layout (little-endian), in the spirit of llm.c's shards:
//   [0, 1024)  256 x int32 header: [0] magic 0x4B545245 ("ERTK"), [1] version 1,
//              [2] bytes per token (2 = uint16, 4 = uint32), [3] 0,
//              [4] token count low 32 bits, [5] token count high 32 bits, rest 0
//   [1024, ..) the tokens; the file size must be exactly 1024 + count * bytes per token.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"
#include "edgerazor/data/shard.h"

namespace edgerazor::io {

inline constexpr int32_t kTokenFileMagic = 0x4B545245;
inline constexpr int32_t kTokenFileVersion = 1;
inline constexpr size_t kTokenFileHeaderBytes = 256 * sizeof(int32_t);

// Writes <path>.tmp and renames it. Uses uint16 when every id fits, else uint32.
inline void write_token_file(const std::string& path, const std::vector<int32_t>& tokens) {
  int32_t width = 2;
  for (int32_t t : tokens) {
    if (t < 0) throw FormatError(path, "negative token id " + std::to_string(t));
    if (t > 0xFFFF) width = 4;
  }
  int32_t header[256] = {};
  header[0] = kTokenFileMagic;
  header[1] = kTokenFileVersion;
  header[2] = width;
  const uint64_t n = tokens.size();
  header[4] = static_cast<int32_t>(n & 0xFFFFFFFFu);
  header[5] = static_cast<int32_t>(n >> 32);
  const std::string tmp = path + ".tmp";
  files::track_temporary(tmp);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    files::untrack_temporary(tmp);
    throw FormatError(tmp, "cannot create");
  }
  bool ok = std::fwrite(header, sizeof(header), 1, f) == 1;
  if (width == 2) {
    std::vector<uint16_t> v(tokens.begin(), tokens.end());
    ok = ok && (v.empty() || std::fwrite(v.data(), 2, v.size(), f) == v.size());
  } else {
    ok = ok && (tokens.empty() || std::fwrite(tokens.data(), 4, tokens.size(), f) == tokens.size());
  }
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
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  files::untrack_temporary(tmp);
  if (ec) throw FormatError(path, "cannot rename " + tmp + ": " + ec.message());
}

inline std::vector<int32_t> read_token_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw FormatError(path, "cannot open token file");
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  int32_t header[256] = {};
  if (size < static_cast<long>(kTokenFileHeaderBytes) || std::fread(header, sizeof(header), 1, f) != 1) {
    std::fclose(f);
    throw FormatError(path, 0, "file is " + std::to_string(size) + " bytes, shorter than the 1024-byte header");
  }
  auto fail = [&](uint64_t at, const std::string& msg) {
    std::fclose(f);
    throw FormatError(path, at, msg);
  };
  if (header[0] != kTokenFileMagic) fail(0, "bad magic (not an edgerazor token file)");
  if (header[1] == 2) {  // a training shard (edgerazor/data/shard.h): its token stream, documents joined
    std::fclose(f);
    const data::ShardReader shard(path);
    std::vector<int32_t> tokens(shard.size());
    for (uint64_t i = 0; i < shard.size(); ++i) tokens[i] = shard.token(i);
    return tokens;
  }
  if (header[1] != kTokenFileVersion) fail(4, "unsupported version " + std::to_string(header[1]));
  if (header[2] != 2 && header[2] != 4) fail(8, "bytes per token must be 2 or 4, got " + std::to_string(header[2]));
  const uint64_t n = static_cast<uint32_t>(header[4]) | (static_cast<uint64_t>(static_cast<uint32_t>(header[5])) << 32);
  const uint64_t width = static_cast<uint64_t>(header[2]);
  const uint64_t body = static_cast<uint64_t>(size) - kTokenFileHeaderBytes;
  if (n > body / width || n * width != body)
    fail(16, "header says " + std::to_string(n) + " tokens (" + std::to_string(n * width) + " bytes) but " +
                 std::to_string(body) + " bytes follow the header");
  std::vector<int32_t> tokens(n);
  if (width == 2) {
    std::vector<uint16_t> v(n);
    if (n && std::fread(v.data(), 2, n, f) != n) fail(kTokenFileHeaderBytes, "short read");
    tokens.assign(v.begin(), v.end());
  } else if (n && std::fread(tokens.data(), 4, n, f) != n) {
    fail(kTokenFileHeaderBytes, "short read");
  }
  std::fclose(f);
  return tokens;
}

}  // namespace edgerazor::io
