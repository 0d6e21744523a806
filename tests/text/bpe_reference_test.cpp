// BpeTokenizer against Hugging Face's reference (transformers' AutoTokenizer on the same folder,
// run by tests/reference/hf_reference.py) on the real Qwen3 tokenizer: the whole TinyStories and
// Shakespeare files in shared/data, and hand-picked multilingual, emoji, whitespace, digit and
// special-token strings; decode of arbitrary id sequences too.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "edgerazor/text/bpe_tokenizer.h"
#include "fixtures/python_reference.h"
#include "fixtures/test_paths.h"

namespace edgerazor::text {
namespace {

const std::string kData = EDGERAZOR_SHARED_DATA_DIR;
const std::string kQwenDir = kData + "/models/qwen3-tokenizer";

const BpeTokenizer& qwen() {
  static const std::unique_ptr<BpeTokenizer> tok =
      BpeTokenizer::from_files(kQwenDir + "/tokenizer.json", kQwenDir + "/tokenizer_config.json");
  return *tok;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// First difference, with the decoded neighbourhood, so a failure says where and what.
void expect_same_ids(const std::vector<int32_t>& ours, const std::vector<int32_t>& reference, const std::string& what) {
  if (ours == reference) return;
  size_t k = 0;
  while (k < ours.size() && k < reference.size() && ours[k] == reference[k]) ++k;
  const auto around = [&](const std::vector<int32_t>& ids) {
    const size_t b = k >= 8 ? k - 8 : 0, e = std::min(ids.size(), k + 8);
    std::string out;
    for (size_t i = b; i < e; ++i) out += std::to_string(ids[i]) + (i == k ? "* " : " ");
    return out + "= \"" + qwen().decode(std::vector<int32_t>(ids.begin() + b, ids.begin() + e)) + "\"";
  };
  ADD_FAILURE() << what << ": ids differ at " << k << " of " << ours.size() << " (ours) / " << reference.size()
                << " (reference)\n  ours:      " << around(ours) << "\n  reference: " << around(reference);
}

std::vector<std::string> tricky_texts() {
  return {
      "Hello world! 你好，世界。 12345  tabs\tand\nnewlines <|im_start|>",
      "Привет, мир! Γειά σου Κόσμε. مرحبا بالعالم. こんにちは世界。안녕하세요 नमस्ते दुनिया ສະບາຍດີ",
      "😀👍🏽 family: 👨‍👩‍👧 flags 🇫🇷🇯🇵 keycap 1️⃣ ©®™ ∑∫√ ½ ⅓ ①②",
      std::string(1000, ' ') + "x" + std::string(3, '\n') + "\t \t\r\n" + std::string(70, '\t') + "y   ",
      "   leading and trailing   ",
      "\n\n\nline\r\nbreaks\r\r\n \n",
      "Numbers: 0 007 123456789 3.14 -2e10 1,234,567.89 ١٢٣ ४५६ ⅦⅧ 二十",
      "Contractions: don't DON'T I'm we'll they'Re it'S o'clock 'quoted' rock'n'roll",
      "Code: for (int i = 0; i < n; ++i) { x[i] += y[i] * 2; } // done\n    return 0;",
      "URLs https://example.com/a?b=c&d=e#f and emails someone@example.org",
      "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
      "<think>\nreasoning\n</think>\n\nanswer<|endoftext|>trailing<tool_call>{\"a\": 1}</tool_call>",
      "<|im_start|><|im_start|><|im_end|>x<|im_end|",
      "Unicode normalization: e\u0301 a\u0308 \u212B \uFB01 \u1100\u1161\u11A8 \u0041\u030A\u0301",
      "Mixed\u00A0spaces\u2003here\u3000and\u2009there \u200B zero-width",
      "supercalifragilisticexpialidocious" + std::string(60, 'z') + "antidisestablishmentarianism",
      "€100 £50 ¥1000 ₹500 ₿0.001",
      "",
  };
}

TEST(BpeReference, SharedTextFilesMatchIdForId) {
  const std::vector<std::string> files = {kData + "/text/tinystories-valid-sample.txt",
                                          kData + "/text/tinystories-train-sample.txt",
                                          kData + "/text/tinyshakespeare.txt"};
  nlohmann::json request = {{"tokenizer_dir", kQwenDir}, {"encode", nlohmann::json::array()}};
  for (const std::string& f : files) request["encode"].push_back({{"file", f}});
  std::string why;
  const auto reference = edgerazor_test::run_python_reference("hf_reference.py", request, why);
  if (!reference) GTEST_SKIP() << why;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::vector<int32_t> expected = (*reference)["encode"][i].get<std::vector<int32_t>>();
    EXPECT_GT(expected.size(), 100000u);
    expect_same_ids(qwen().encode(read(files[i])), expected, files[i]);
  }
}

TEST(BpeReference, MultilingualEmojiWhitespaceDigitsAndSpecialTokens) {
  const std::vector<std::string> texts = tricky_texts();
  nlohmann::json request = {{"tokenizer_dir", kQwenDir}, {"encode", texts}};
  std::string why;
  const auto reference = edgerazor_test::run_python_reference("hf_reference.py", request, why);
  if (!reference) GTEST_SKIP() << why;
  for (size_t i = 0; i < texts.size(); ++i)
    expect_same_ids(qwen().encode(texts[i]), (*reference)["encode"][i].get<std::vector<int32_t>>(),
                    "text " + std::to_string(i) + " \"" + texts[i].substr(0, 40) + "\"");
}

TEST(BpeReference, DecodeMatchesIncludingBrokenByteSequences) {
  std::vector<std::vector<int32_t>> sequences;
  for (const std::string& t : tricky_texts()) {
    const std::vector<int32_t> ids = qwen().encode(t);
    sequences.push_back(ids);
    // Every other id only: cuts multi-byte characters apart.
    std::vector<int32_t> odd;
    for (size_t k = 0; k < ids.size(); k += 2) odd.push_back(ids[k]);
    sequences.push_back(odd);
  }
  sequences.push_back({151643, 151644, 151645, 151657, 151667, 151668});
  nlohmann::json request = {{"tokenizer_dir", kQwenDir}, {"decode", sequences}};
  std::string why;
  const auto reference = edgerazor_test::run_python_reference("hf_reference.py", request, why);
  if (!reference) GTEST_SKIP() << why;
  for (size_t i = 0; i < sequences.size(); ++i)
    EXPECT_EQ(qwen().decode(sequences[i]), (*reference)["decode"][i].get<std::string>()) << "sequence " << i;
}

}  // namespace
}  // namespace edgerazor::text
