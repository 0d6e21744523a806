// BpeTokenizer on the real Qwen3 tokenizer.json: golden ids (verified with @huggingface/tokenizers
// 0.2.0, see tests/text/reference), decoding, offsets, exporter accessors, the load_tokenizer
// factory, and hostile files. Needs no network.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "edgerazor/core/error.h"
#include "edgerazor/text/bpe_tokenizer.h"
#include "edgerazor/text/tokenizer.h"
#include "edgerazor/text/unicode.h"
#include "fixtures/test_paths.h"

namespace edgerazor::text {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

const std::string kQwenDir = std::string(EDGERAZOR_SHARED_DATA_DIR) + "/models/qwen3-tokenizer";

const BpeTokenizer& qwen() {
  static const std::unique_ptr<BpeTokenizer> tok =
      BpeTokenizer::from_files(kQwenDir + "/tokenizer.json", kQwenDir + "/tokenizer_config.json");
  return *tok;
}

class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/edgerazor-bpe-test-XXXXXX";
    path_ = mkdtemp(name);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  std::string path_;
};

TEST(BpeTokenizerGolden, SourcesExample) {
  // The check recorded in shared/data/SOURCES.md (two independent JS implementations agree).
  EXPECT_THAT(qwen().encode("Hello world! 你好，世界。 12345  tabs\tand\nnewlines <|im_start|>"),
              ElementsAre(9707, 1879, 0, 220, 108386, 3837, 99489, 1773, 220, 16, 17, 18, 19, 20, 220, 22398,
                          52477, 198, 931, 7969, 220, 151644));
}

TEST(BpeTokenizerGolden, EnglishFromTheSharedTexts) {
  EXPECT_THAT(qwen().encode("Once upon a time, there was a little girl named Lily."),
              ElementsAre(12522, 5193, 264, 882, 11, 1052, 572, 264, 2632, 3743, 6941, 47290, 13));
  EXPECT_THAT(qwen().encode("First Citizen:\nBefore we proceed any further, hear me speak."),
              ElementsAre(5338, 46217, 510, 10227, 582, 10354, 894, 4623, 11, 6723, 752, 6468, 13));
}

TEST(BpeTokenizerGolden, DigitsAreSplitOneByOne) {
  EXPECT_THAT(qwen().encode("I'm 25 years old; it's 3.14159 and 1,000,000!"),
              ElementsAre(40, 2776, 220, 17, 20, 1635, 2310, 26, 432, 594, 220, 18, 13, 16, 19, 16, 20, 24, 323,
                          220, 16, 11, 15, 15, 15, 11, 15, 15, 15, 0));
}

TEST(BpeTokenizerGolden, EmojiAndMultilingual) {
  EXPECT_THAT(qwen().encode("😀👍🏽 family: 👨‍👩‍👧 flags 🇫🇷"),
              ElementsAre(141334, 144349, 145375, 2997, 25, 61804, 101, 378, 235, 145233, 378, 235, 145665, 8042,
                          11162, 229, 104, 145070));
  EXPECT_THAT(qwen().encode("Привет, мир! Γειά σου Κόσμε. مرحبا بالعالم. こんにちは世界。안녕하세요"),
              ElementsAreArray({53645,  26991,  8178,   11,     137144, 0,      84216,  30143,  29762,  74134, 47723,
                                72886,  7851,   248,    75195,  43928,  43123,  30143,  13,     23364,  126860, 124671,
                                124476, 129634, 13,     220,    89015,  99489,  1773,   126246, 144370, 91145}));
}

TEST(BpeTokenizerGolden, WhitespaceRunsAndLongWords) {
  EXPECT_THAT(qwen().encode("a" + std::string(100, ' ') + "b\n\n\n  \t\t x"),
              ElementsAre(64, 5238, 1920, 293, 1406, 35329, 856));
  // 120 bytes: longer than the quadratic merge path, so this runs the heap path.
  EXPECT_EQ(qwen().encode(std::string(120, 'x')), std::vector<int32_t>(15, 44102));
  EXPECT_THAT(qwen().encode("don'T WE'LL they'RE"), ElementsAre(15007, 17323, 19677, 6, 4086, 807, 94153));
}

TEST(BpeTokenizerGolden, SpecialTokensAreMatchedBeforeBpe) {
  EXPECT_THAT(qwen().encode("<|im_start|>user\nHi<|im_end|>\n<think>\n\n</think>"),
              ElementsAre(151644, 872, 198, 13048, 151645, 198, 151667, 271, 151668));
}

TEST(BpeTokenizerGolden, NfcNormalization) {
  // "e" + U+0301 composes to "é" (963 for both spellings), the ligature stays, NBSP and U+3000 too.
  EXPECT_THAT(qwen().encode("é e\u0301 ﬁ  \u00a0x \u3000y"),
              ElementsAre(963, 3958, 32495, 70731, 256, 4102, 87, 220, 22441, 88));
}

TEST(BpeTokenizerDecode, RoundTripsAndReplacesBrokenUtf8) {
  for (const std::string s : {"Hello world! 你好，世界。", "😀👍🏽 👨‍👩‍👧", "tabs\tand\r\nnewlines   ",
                              "<|im_start|>assistant\n<think>\n\n</think>\n\nHi<|im_end|>"}) {
    EXPECT_EQ(qwen().decode(qwen().encode(s)), s);
  }
  EXPECT_EQ(qwen().decode({145207}), "💫");
  EXPECT_EQ(qwen().decode({9707, 151645, 151644}), "Hello<|im_end|><|im_start|>");
  EXPECT_EQ(qwen().decode({9707, 151645, 151644}, /*skip_special_tokens=*/true), "Hello");
  // " 🇫" is " \xF0" + "\x9F" + ...: cut after two ids, the incomplete F0 9F becomes one U+FFFD.
  EXPECT_EQ(qwen().decode({11162, 229}), " \xEF\xBF\xBD");
  EXPECT_EQ(qwen().encode("🫠"), std::vector<int32_t>({9284, 104, 254}));
  EXPECT_EQ(qwen().decode({9284, 104}), "\xEF\xBF\xBD");
  EXPECT_EQ(qwen().decode({-1, 999999999, 16}), "1");  // unknown ids vanish, as in tokenizers
}

TEST(BpeTokenizerDecode, InvalidUtf8InputIsReadAsReplacementCharacters) {
  EXPECT_EQ(qwen().encode("a\xff" "b"), qwen().encode("a\xEF\xBF\xBD" "b"));
  EXPECT_EQ(sanitize_utf8("\xE2\x82"), "\xEF\xBF\xBD");             // truncated: one U+FFFD
  EXPECT_EQ(sanitize_utf8("\xF0\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // bad lead
  EXPECT_TRUE(is_valid_utf8("\xEF\xBF\xBD"));
}

TEST(BpeTokenizerOffsets, TokensMapBackToInputBytes) {
  const std::string text = "Hello world<|im_end|> é e\u0301!";
  std::vector<ByteSpan> offsets;
  const std::vector<int32_t> ids = qwen().encode_with_offsets(text, offsets);
  EXPECT_EQ(ids, qwen().encode(text));
  ASSERT_EQ(offsets.size(), ids.size());
  EXPECT_EQ(offsets[0].begin, 0u);
  EXPECT_EQ(offsets[0].end, 5u);    // "Hello"
  EXPECT_EQ(offsets[1].begin, 5u);  // " world"
  EXPECT_EQ(offsets[1].end, 11u);
  EXPECT_EQ(offsets[2].begin, 11u);  // <|im_end|>
  EXPECT_EQ(offsets[2].end, 21u);
  EXPECT_EQ(offsets.back().end, text.size());
  for (size_t k = 1; k < offsets.size(); ++k) EXPECT_LE(offsets[k - 1].end, offsets[k].begin + 3);
}

TEST(BpeTokenizerAccessors, WhatAGgufExporterNeeds) {
  const BpeTokenizer& t = qwen();
  EXPECT_EQ(t.kind(), "bpe");
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_EQ(t.tokens().size(), 151669u);
  EXPECT_EQ(t.token_types().size(), 151669u);
  EXPECT_EQ(t.tokens()[0], "!");
  EXPECT_EQ(t.tokens()[220], "Ġ");
  EXPECT_EQ(t.id_to_piece(9707), "Hello");
  EXPECT_EQ(t.tokens()[151644], "<|im_start|>");
  EXPECT_EQ(t.token_types()[9707], TokenType::kNormal);
  EXPECT_EQ(t.token_types()[151643], TokenType::kControl);      // <|endoftext|>, special
  EXPECT_EQ(t.token_types()[151657], TokenType::kUserDefined);  // <tool_call>, not special
  EXPECT_EQ(t.merges().size(), 151387u);
  EXPECT_EQ(t.merges()[0], "Ġ Ġ");
  EXPECT_EQ(t.merges()[2], "i n");
  EXPECT_EQ(t.added_tokens().size(), 26u);
  ASSERT_EQ(t.pre_tokenizer_patterns().size(), 1u);
  EXPECT_THAT(t.pre_tokenizer_patterns()[0], HasSubstr("\\p{L}"));
  EXPECT_FALSE(t.bos_id().has_value());
  EXPECT_EQ(t.eos_id(), 151645);
  EXPECT_EQ(t.pad_id(), 151643);
  EXPECT_EQ(t.eos_token(), "<|im_end|>");
  EXPECT_FALSE(t.add_bos_by_default());
  EXPECT_THAT(t.chat_template(), HasSubstr("<|im_start|>"));
  EXPECT_EQ(t.token_to_id("Ġworld"), 1879);
  EXPECT_EQ(t.token_to_id("<think>"), 151667);
  EXPECT_FALSE(t.token_to_id("no such token").has_value());
}

TEST(LoadTokenizer, PicksTokenizerJsonInAQwenFolder) {
  const std::unique_ptr<Tokenizer> t = load_tokenizer(kQwenDir);
  EXPECT_EQ(t->kind(), "bpe");
  EXPECT_EQ(t->encode("Hello world"), std::vector<int32_t>({9707, 1879}));
  EXPECT_EQ(load_tokenizer(kQwenDir + "/")->vocab_size(), 151669);
}

TEST(LoadTokenizer, FolderWithoutTokenizerIsAFormatErrorNamingIt) {
  TempDir dir;
  try {
    load_tokenizer(dir.path());
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr(dir.path()));
    EXPECT_THAT(e.what(), HasSubstr("tokenizer.json"));
  }
}

TEST(LoadTokenizer, SentencePieceStyleTokenizerJsonFallsBackToTokenizerModel) {
  // Llama 2 folders ship a Metaspace/byte_fallback tokenizer.json next to tokenizer.model.
  TempDir dir;
  dir.write("tokenizer.json", R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []},
    "pre_tokenizer": {"type": "Metaspace"}, "decoder": {"type": "ByteFallback"}})");
  std::ifstream src(std::string(EDGERAZOR_SHARED_DATA_DIR) + "/models/stories260K/tok512.model", std::ios::binary);
  std::ofstream(dir.path() + "/tokenizer.model", std::ios::binary) << src.rdbuf();
  const std::unique_ptr<Tokenizer> t = load_tokenizer(dir.path());
  EXPECT_EQ(t->kind(), "sentencepiece");
  EXPECT_EQ(t->vocab_size(), 512);
  // Without tokenizer.model the unsupported tokenizer.json is reported.
  std::remove((dir.path() + "/tokenizer.model").c_str());
  EXPECT_THROW(load_tokenizer(dir.path()), FormatError);
}

// A tiny byte-level BPE written by hand, to reach components Qwen3 does not use.
std::string tiny_tokenizer_json(const std::string& model_extra, const std::string& pre_tokenizer,
                                const std::string& added = "[]") {
  std::string vocab;
  const auto& alphabet = byte_level_alphabet();
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    append_utf8(symbol, alphabet[b]);
    if (symbol == "\"" || symbol == "\\") symbol = "\\" + symbol;
    vocab += "\"" + symbol + "\": " + std::to_string(b) + ", ";
  }
  vocab += R"("ab": 256, "Ġa": 257, "Ġab": 258)";
  return R"({"added_tokens": )" + added + R"(, "normalizer": null, "pre_tokenizer": )" + pre_tokenizer +
         R"(, "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {)" + vocab +
         R"(}, "merges": ["Ġ a", "Ġa b", "a b"])" + model_extra + "}}";
}

TEST(BpeTokenizerTiny, ByteLevelPrefixSpaceGpt2RegexAndStrippingAddedTokens) {
  TempDir dir;
  const std::string path = dir.write(
      "tokenizer.json",
      tiny_tokenizer_json("", R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})",
                          R"([{"id": 300, "content": "<x>", "special": true, "lstrip": true, "rstrip": true}])"));
  const auto t = BpeTokenizer::from_files(path, "");
  EXPECT_EQ(t->vocab_size(), 301);
  EXPECT_EQ(t->token_types()[299], TokenType::kUnused);
  EXPECT_EQ(t->tokens()[299], "[PAD299]");
  // " ab" is prefixed with a space and merged to Ġab; "ab" after a space the same way.
  EXPECT_EQ(t->encode("ab ab"), std::vector<int32_t>({258, 258}));
  // <x> swallows the spaces around it; the text after it gets its own prefix space.
  EXPECT_EQ(t->encode("ab  <x>  ab"), std::vector<int32_t>({258, 300, 258}));
  EXPECT_EQ(t->decode({258, 300, 258}), " ab<x> ab");
  EXPECT_EQ(t->decode({258, 300, 258}, true), " ab ab");
}

TEST(BpeTokenizerTiny, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  TempDir dir;
  const std::string with = dir.write(
      "with.json", tiny_tokenizer_json(R"(, "ignore_merges": true)", R"({"type": "ByteLevel", "add_prefix_space": false})"));
  EXPECT_EQ(BpeTokenizer::from_files(with, "")->encode(" ab"), std::vector<int32_t>({258}));
}

TEST(BpeTokenizerHostile, MissingFileAndBadJsonNameTheFile) {
  TempDir dir;
  try {
    BpeTokenizer::from_files(dir.path() + "/nope.json", "");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("nope.json"));
  }
  const std::string bad = dir.write("bad.json", "{\"model\": [1, 2");
  try {
    BpeTokenizer::from_files(bad, "");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad.json"));
    EXPECT_THAT(e.what(), HasSubstr("invalid JSON"));
  }
}

TEST(BpeTokenizerHostile, BadMergesVocabAndRegexNameTheKey) {
  TempDir dir;
  const std::string byte_level = R"({"type": "ByteLevel", "add_prefix_space": false})";
  std::string json = tiny_tokenizer_json("", byte_level);
  const std::string merge = "\"Ġa b\"";
  json.replace(json.find(merge), merge.size(), "\"Ġa zz\"");
  try {
    BpeTokenizer::from_files(dir.write("merge.json", json), "");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("merge.json"));
    EXPECT_THAT(e.what(), HasSubstr("model.merges[1]"));
  }
  std::string dup = tiny_tokenizer_json("", byte_level);
  const std::string entry = "\"Ġab\": 258";
  dup.replace(dup.find(entry), entry.size(), "\"Ġab\": 257");
  try {
    BpeTokenizer::from_files(dir.write("dup.json", dup), "");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("used twice"));
  }
  const std::string split =
      R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}, )" +
      byte_level + "]}";
  try {
    BpeTokenizer::from_files(dir.write("regex.json", tiny_tokenizer_json("", split)), "");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("pre_tokenizer.pretokenizers[0].pattern"));
  }
  // A component "type" that is not a string (found by the tokenizer_json fuzzer; was nlohmann's
  // type_error without the file): no such component, so not a byte-level BPE.
  std::string numeric_type = tiny_tokenizer_json("", byte_level);
  const std::string decoder = R"("decoder": {"type": "ByteLevel"})";
  numeric_type.replace(numeric_type.find(decoder), decoder.size(), R"("decoder": {"type": 24})");
  try {
    BpeTokenizer::from_files(dir.write("numeric.json", numeric_type), "");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("numeric.json"));
    EXPECT_THAT(e.what(), HasSubstr("not a byte-level BPE"));
  }
}

TEST(BpeTokenizerHostile, ConfigNamingAnUnknownEosIsAnError) {
  TempDir dir;
  const std::string json = dir.write("tokenizer.json", tiny_tokenizer_json("", R"({"type": "ByteLevel"})"));
  const std::string config = dir.write("tokenizer_config.json", R"({"eos_token": "<missing>"})");
  try {
    BpeTokenizer::from_files(json, config);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tokenizer_config.json"));
    EXPECT_THAT(e.what(), HasSubstr("eos_token"));
  }
}

}  // namespace
}  // namespace edgerazor::text
