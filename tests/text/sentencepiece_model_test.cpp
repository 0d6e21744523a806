// SentencePiece piece-table reader and BPE encoder, checked against libsentencepiece's output
// (recorded ids, and a live run of edgerazor-data, which links libsentencepiece).
#include "edgerazor/text/sentencepiece_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "edgerazor/core/error.h"
#include "edgerazor/io/token_file.h"
#include "fixtures/test_paths.h"

namespace {
using edgerazor::FormatError;
using edgerazor::text::PieceType;
using edgerazor::text::SentencePieceTokenizer;
using ::testing::HasSubstr;

const std::string kData = EDGERAZOR_SHARED_DATA_DIR;
const std::string kTok512 = kData + "/models/stories260K/tok512.model";
const std::string kLlama2 = kData + "/models/llama2-tokenizer/tokenizer.model";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(SentencePieceModel, ReadsTok512PieceTable) {
  const auto m = edgerazor::text::read_sentencepiece_model(kTok512);
  ASSERT_EQ(m.pieces.size(), 512u);
  EXPECT_EQ(m.model_type, 2);  // BPE
  EXPECT_TRUE(m.byte_fallback);
  EXPECT_EQ(m.unk_id, 0);
  EXPECT_EQ(m.bos_id, 1);
  EXPECT_EQ(m.eos_id, 2);
  EXPECT_EQ(m.pieces[0].type, PieceType::kUnknown);
  EXPECT_EQ(m.pieces[1].piece, "<s>");
  EXPECT_EQ(m.pieces[1].type, PieceType::kControl);
  EXPECT_EQ(m.pieces[13].piece, "<0x0A>");
  EXPECT_EQ(m.pieces[13].type, PieceType::kByte);
  EXPECT_EQ(m.pieces[259].type, PieceType::kNormal);
}

TEST(SentencePieceModel, MatchesLlama2cTokenizerBin) {
  // tok512.bin (llama2.c export): int32 max_len, then per id float score, int32 len, bytes.
  const auto m = edgerazor::text::read_sentencepiece_model(kTok512);
  const std::string bin = read_file(kData + "/models/stories260K/tok512.bin");
  size_t pos = 4;
  for (size_t id = 0; id < 512; ++id) {
    float score;
    int32_t len;
    std::memcpy(&score, bin.data() + pos, 4);
    std::memcpy(&len, bin.data() + pos + 4, 4);
    std::string piece = bin.substr(pos + 8, len);
    pos += 8 + len;
    if (id >= 3) {  // 0..2 are renamed by llama2.c ("<unk>", "\n<s>\n", "\n</s>\n")
      std::string expected = m.pieces[id].piece;
      for (size_t p; (p = expected.find("\xE2\x96\x81")) != std::string::npos;) expected.replace(p, 3, " ");
      EXPECT_EQ(piece, expected) << "id " << id;
    }
    EXPECT_EQ(score, m.pieces[id].score) << "id " << id;
  }
  EXPECT_EQ(pos, bin.size());
}

TEST(SentencePieceTokenizer, EncodesLikeLibSentencePiece) {
  SentencePieceTokenizer tok(edgerazor::text::read_sentencepiece_model(kTok512));
  ASSERT_TRUE(tok.can_encode());
  // Ids from libsentencepiece 0.1.97 (edgerazor-data encode --print-ids).
  const std::vector<int32_t> expected = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
                                         401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426};
  const std::string text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
  EXPECT_EQ(tok.encode(text), expected);
  EXPECT_EQ(tok.decode(expected), text);
  std::vector<int32_t> with_bos = expected;
  with_bos.insert(with_bos.begin(), 1);
  EXPECT_EQ(tok.decode(with_bos), text);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_FALSE(tok.pad_id().has_value());
  EXPECT_TRUE(tok.add_bos_by_default());
  EXPECT_EQ(tok.kind(), "sentencepiece");
}

TEST(SentencePieceTokenizer, ByteFallbackRoundTrips) {
  SentencePieceTokenizer tok(edgerazor::text::read_sentencepiece_model(kTok512));
  const std::string text = "Line one.\nZ\xC3\xBCrich \xE2\x82\xAC 42!";
  const auto ids = tok.encode(text);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 13), ids.end());  // '\n' -> <0x0A>
  EXPECT_EQ(tok.decode(ids), text);
  // A lone byte piece of an incomplete UTF-8 sequence decodes to U+FFFD.
  EXPECT_EQ(tok.decode({3 + 0xE2}), "\xEF\xBF\xBD");
}

TEST(SentencePieceTokenizer, Llama2Tokenizer) {
  SentencePieceTokenizer tok(edgerazor::text::read_sentencepiece_model(kLlama2));
  EXPECT_EQ(tok.vocab_size(), 32000);
  const std::vector<int32_t> expected = {9038, 2501, 263, 931, 29892, 727, 471, 263, 2217, 7826, 4257, 365, 2354, 29889};
  EXPECT_EQ(tok.encode("Once upon a time, there was a little girl named Lily."), expected);
  EXPECT_EQ(tok.decode(expected), "Once upon a time, there was a little girl named Lily.");
}

TEST(SentencePieceTokenizer, WholeFileMatchesEdgerazorData) {
  // edgerazor-data links libsentencepiece: the reference encoder, run as a separate process.
  const std::string tool = std::string(EDGERAZOR_BIN_DIR) + "/edgerazor-data";
  if (!std::filesystem::exists(tool)) GTEST_SKIP() << "edgerazor-data not built";
  const std::string text_path = kData + "/text/tinystories-valid-sample.txt";
  const auto out = std::filesystem::temp_directory_path() / "er_sp_valid.bin";
  const std::string cmd = tool + " encode --tokenizer " + kTok512 + " --in " + text_path + " --out " + out.string() + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const auto reference = edgerazor::io::read_token_file(out.string());
  std::filesystem::remove(out);
  SentencePieceTokenizer tok(edgerazor::text::read_sentencepiece_model(kTok512));
  const auto ids = tok.encode(read_file(text_path));
  ASSERT_EQ(ids.size(), reference.size());
  EXPECT_EQ(ids, reference);
}

TEST(SentencePieceModel, HostileFiles) {
  const std::string good = read_file(kTok512);
  // Truncated in the middle of a piece.
  try {
    edgerazor::text::parse_sentencepiece_model(good.substr(0, 1000), "cut.model");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cut.model"));
    EXPECT_THAT(e.what(), HasSubstr("past the end"));
  }
  // Not a protobuf: wire type 7 / garbage.
  EXPECT_THROW(edgerazor::text::parse_sentencepiece_model(std::string("\xFF\xFF\xFF\xFF", 4), "junk.model"), FormatError);
  // Empty: no pieces.
  try {
    edgerazor::text::parse_sentencepiece_model("", "empty.model");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no pieces"));
  }
  EXPECT_THROW(edgerazor::text::read_sentencepiece_model("/nonexistent/tokenizer.model"), FormatError);
  // A byte piece whose name is not <0xHH> (found by fuzz/harnesses/sentencepiece_model.cpp; was an
  // uncaught std::invalid_argument). Same length, so the protobuf framing stays valid.
  std::string bad_byte = good;
  const size_t at = bad_byte.find("<0x41>");
  ASSERT_NE(at, std::string::npos);
  bad_byte.replace(at, 6, "<0xZZ>");
  try {
    edgerazor::text::parse_sentencepiece_model(bad_byte, "bytes.model");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bytes.model"));
    EXPECT_THAT(e.what(), HasSubstr("byte piece '<0xZZ>' is not of the form <0xHH>"));
  }
}

}  // namespace
