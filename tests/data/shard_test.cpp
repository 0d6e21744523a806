// Token shards: write/read round trips (uint16/uint32, label mask, documents), flat v1 files,
// and one hostile file per validation branch of the reader.
#include <gmock/gmock.h>

#include <cstring>

#include "data/test_util.h"
#include "edgerazor/core/error.h"
#include "edgerazor/data/shard.h"
#include "edgerazor/io/token_file.h"

namespace {
using namespace data_test;
using edgerazor::FormatError;
using edgerazor::data::ShardInfo;
using edgerazor::data::ShardReader;
using ::testing::HasSubstr;

class ShardTest : public TempDirTest {
 protected:
  // Overwrites 4 bytes at `offset` with `value`.
  void patch_i32(const std::string& p, uint64_t offset, int32_t value) {
    std::string bytes = read_file(p);
    std::memcpy(&bytes[offset], &value, 4);
    write_file(p, bytes);
  }
  void patch_u64(const std::string& p, uint64_t offset, uint64_t value) {
    std::string bytes = read_file(p);
    std::memcpy(&bytes[offset], &value, 8);
    write_file(p, bytes);
  }
  // The message of the FormatError opening `p` throws ("" when it opens).
  std::string open_error(const std::string& p) {
    try {
      ShardReader r(p);
    } catch (const FormatError& e) {
      return e.what();
    }
    return "";
  }
  std::string valid_shard(const std::string& name) {
    const std::string p = path(name);
    write_shard(p, {{5, 6, 7}, {8, 9}, {10, 11, 12, 13}}, {{0, 1, 1}, {1, 1}, {0, 0, 1, 1}}, 100);
    return p;
  }
};

TEST_F(ShardTest, RoundTripWithMaskAndDocuments) {
  const std::string p = valid_shard("a.bin");
  const ShardInfo w = edgerazor::data::read_shard_info(p);
  EXPECT_EQ(w.version, 2);
  EXPECT_EQ(w.bytes_per_token, 2);
  EXPECT_TRUE(w.has_label_mask);
  EXPECT_EQ(w.tokens, 9u);
  EXPECT_EQ(w.documents, 3u);
  EXPECT_EQ(w.vocab_size, 100);
  EXPECT_EQ(w.max_token_id, 13);
  // 1024 + 9*2 + 9 mask = 1051 -> pad to 1056, + 4 offsets * 8
  EXPECT_EQ(w.file_bytes, 1056u + 32u);
  EXPECT_EQ(fs::file_size(p), 1088u);
  ShardReader r(p);
  std::vector<int32_t> ids;
  std::vector<bool> labels;
  for (uint64_t i = 0; i < r.size(); ++i) {
    ids.push_back(r.token(i));
    labels.push_back(r.label(i));
  }
  EXPECT_EQ(ids, (std::vector<int32_t>{5, 6, 7, 8, 9, 10, 11, 12, 13}));
  EXPECT_EQ(labels, (std::vector<bool>{false, true, true, true, true, false, false, true, true}));
  EXPECT_EQ(r.document_begin(0), 0u);
  EXPECT_EQ(r.document_begin(1), 3u);
  EXPECT_EQ(r.document_begin(2), 5u);
  EXPECT_EQ(r.document_begin(3), 9u);
  EXPECT_EQ(r.count_label_tokens(), 6u);
  std::vector<int64_t> out(4), lab(4);
  r.copy_tokens(4, 8, out.data());
  r.copy_labels(4, 8, lab.data(), out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{9, 10, 11, 12}));
  EXPECT_EQ(lab, (std::vector<int64_t>{9, -100, -100, 12}));
  expect_no_tmp();
}

TEST_F(ShardTest, Uint32AndNoMask) {
  const std::string p = path("b.bin");
  const ShardInfo w = write_shard(p, {{70000, 1}, {151645}}, {}, 151669);
  EXPECT_EQ(w.bytes_per_token, 4);
  ShardReader r(p);
  EXPECT_FALSE(r.info().has_label_mask);
  EXPECT_EQ(r.token(0), 70000);
  EXPECT_EQ(r.token(2), 151645);
  EXPECT_TRUE(r.label(1));
  EXPECT_EQ(r.count_label_tokens(), 3u);
  EXPECT_EQ(fs::file_size(p), 1024u + 12u + 4u + 24u);  // tokens, pad to 8, 3 offsets
}

TEST_F(ShardTest, FlatTokenFileReadsAsOneDocument) {
  const std::string p = path("flat.bin");
  edgerazor::io::write_token_file(p, {1, 2, 3, 4});
  ShardReader r(p);
  EXPECT_EQ(r.info().version, 1);
  EXPECT_EQ(r.size(), 4u);
  EXPECT_EQ(r.documents(), 1u);
  EXPECT_EQ(r.document_begin(1), 4u);
  EXPECT_TRUE(r.label(3));
  EXPECT_EQ(r.token(3), 4);
}

TEST_F(ShardTest, WriterRejectsBadIdsAndLeavesNothing) {
  const std::string p = path("c.bin");
  {
    edgerazor::data::ShardWriterOptions o;
    o.vocab_size = 10;
    edgerazor::data::ShardWriter w(p, o);
    w.add_document({1, 2});
    try {
      w.add_document({3, 10});
      FAIL() << "expected FormatError";
    } catch (const FormatError& e) {
      EXPECT_THAT(e.what(), HasSubstr("token id 10"));
      EXPECT_THAT(e.what(), HasSubstr("document 1"));
    }
    EXPECT_THROW(w.add_document({-1}), FormatError);
  }  // destroyed unfinished
  EXPECT_FALSE(fs::exists(p));
  expect_no_tmp();
  {
    edgerazor::data::ShardWriter w(p, {});
    EXPECT_THROW(w.add_document({70000}), FormatError);  // uint16 without a vocabulary
    EXPECT_THROW(w.add_document({1, 2}, {1, 0}), std::logic_error);  // zeros need label_mask
  }
  EXPECT_FALSE(fs::exists(p));
  edgerazor::data::ShardWriterOptions big;
  big.vocab_size = 100000;
  big.bytes_per_token = 2;
  EXPECT_THROW(edgerazor::data::ShardWriter(p, big), FormatError);
  expect_no_tmp();
}

TEST_F(ShardTest, EmptyDocumentsSkippedAndEmptyShardValid) {
  const std::string p = path("e.bin");
  const ShardInfo w = write_shard(p, {{}, {4}, {}});
  EXPECT_EQ(w.documents, 1u);
  EXPECT_EQ(ShardReader(p).documents(), 1u);
  const std::string q = path("empty.bin");
  write_shard(q, {});
  ShardReader r(q);
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.documents(), 0u);
}

TEST_F(ShardTest, HostileTruncated) {
  const std::string p = valid_shard("t.bin");
  fs::resize_file(p, fs::file_size(p) - 1);
  const std::string e = open_error(p);
  EXPECT_THAT(e, HasSubstr("t.bin"));
  EXPECT_THAT(e, HasSubstr("at byte 1087"));
  EXPECT_THAT(e, HasSubstr("truncated"));
  EXPECT_THAT(e, HasSubstr("needs 1088"));
  fs::resize_file(p, 1030);  // into the token stream
  EXPECT_THAT(open_error(p), HasSubstr("only 6 bytes follow the header"));
  fs::resize_file(p, 100);  // into the header
  EXPECT_THAT(open_error(p), HasSubstr("shorter than the 1024-byte header"));
}

TEST_F(ShardTest, HostileTrailingBytes) {
  const std::string p = valid_shard("x.bin");
  std::ofstream(p, std::ios::app | std::ios::binary) << "junk";
  const std::string e = open_error(p);
  EXPECT_THAT(e, HasSubstr("x.bin"));
  EXPECT_THAT(e, HasSubstr("file is 1092 bytes"));
}

TEST_F(ShardTest, HostileBadMagicVersionWidthFlags) {
  const std::string p = valid_shard("m.bin");
  patch_i32(p, 0, 0x12345678);
  std::string e = open_error(p);
  EXPECT_THAT(e, HasSubstr("m.bin: at byte 0: bad magic"));
  patch_i32(p, 0, edgerazor::data::kShardMagic);
  patch_i32(p, 4, 7);
  EXPECT_THAT(open_error(p), HasSubstr("at byte 4: unsupported shard version 7"));
  patch_i32(p, 4, 2);
  patch_i32(p, 8, 3);
  EXPECT_THAT(open_error(p), HasSubstr("at byte 8: bytes per token must be 2 or 4, got 3"));
  patch_i32(p, 8, 2);
  patch_i32(p, 12, 6);
  EXPECT_THAT(open_error(p), HasSubstr("at byte 12: unknown flags"));
  patch_i32(p, 12, 1);
  EXPECT_EQ(open_error(p), "");
}

TEST_F(ShardTest, HostileCountMismatch) {
  const std::string p = valid_shard("n.bin");
  patch_i32(p, 16, 10);  // 10 tokens claimed, 9 written
  std::string e = open_error(p);
  EXPECT_THAT(e, HasSubstr("n.bin"));
  EXPECT_THAT(e, HasSubstr("10 tokens"));
  patch_i32(p, 16, 9);
  patch_i32(p, 20, 1);  // high word: 2^32 + 9 tokens
  EXPECT_THAT(open_error(p), HasSubstr("at byte 16"));
  patch_i32(p, 20, 0);
  patch_i32(p, 24, 4);  // 4 documents claimed, table has 4 offsets for 3
  EXPECT_THAT(open_error(p), HasSubstr("4 documents"));
  patch_i32(p, 24, 50);  // more documents than tokens
  EXPECT_THAT(open_error(p), HasSubstr("at byte 24: header says 50 documents but only 9 tokens"));
  patch_i32(p, 24, 3);
  patch_i32(p, 36, 100);  // largest id >= vocab
  EXPECT_THAT(open_error(p), HasSubstr("at byte 36: largest token id 100 is outside the vocabulary (100)"));
}

TEST_F(ShardTest, HostileDocumentTable) {
  const std::string p = valid_shard("d.bin");
  const uint64_t table = 1056;
  patch_u64(p, table, 1);
  EXPECT_THAT(open_error(p), HasSubstr("at byte 1056: document table must start at 0"));
  patch_u64(p, table, 0);
  patch_u64(p, table + 16, 2);  // o_2 = 2 < o_1 = 3
  std::string e = open_error(p);
  EXPECT_THAT(e, HasSubstr("d.bin: at byte 1072: document offset 2 is 2, expected > 3"));
  patch_u64(p, table + 16, 5);
  patch_u64(p, table + 24, 8);  // ends before the last token
  EXPECT_THAT(open_error(p), HasSubstr("at byte 1080: document table ends at token 8 but the shard has 9 tokens"));
  patch_u64(p, table + 24, 99);
  EXPECT_THAT(open_error(p), HasSubstr("document offset 3 is 99"));
}

TEST_F(ShardTest, HostileMissingAndNotAFile) {
  EXPECT_THAT(open_error(path("nope.bin")), HasSubstr("nope.bin: cannot open token shard"));
  EXPECT_THAT(open_error(dir_.string()), HasSubstr("not a regular file"));
  EXPECT_THROW(edgerazor::data::read_shard_info(path("nope.bin")), FormatError);
}

}  // namespace
