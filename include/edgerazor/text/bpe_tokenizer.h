// Implements: BpeTokenizer, a Hugging Face tokenizer.json byte-level BPE tokenizer (Qwen2/Qwen3,
// GPT-2, Llama 3 style) that gives the same ids as the Hugging Face `tokenizers` library.
//
// Encoding pipeline (as in tokenizers' TokenizerImpl):
//   1. added tokens (special or not) are split off the raw text first, leftmost-longest, with
//      their lstrip/rstrip/single_word flags; they become their own ids and skip steps 2-4;
//   2. normalizer (NFC/NFD/NFKC/NFKD through ICU, Sequence of them);
//   3. pre-tokenizer: Split (regex through PCRE2 with UTF+UCP, behaviours Isolated/Removed,
//      invert), ByteLevel (add_prefix_space, use_regex = the GPT-2 pattern), Sequence;
//   4. BPE model: bytes -> byte-level symbols -> merges by rank (lowest first, leftmost on ties),
//      ignore_merges honoured; results cached per pre-token.
// Decoding: tokens -> bytes through the inverse byte-level alphabet (added tokens verbatim when a
// character is outside it), invalid UTF-8 replaced by U+FFFD (errors="replace").
//
// Torch-free and protobuf-free. Thread-safe: encode/decode are const and may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/text/tokenizer.h"

namespace edgerazor::text {

// Token kinds, as GGUF's tokenizer.ggml.token_type stores them (llama.cpp's numbering).
enum class TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5 };

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;      // control token (skipped by decode(ids, true))
  bool lstrip = false;       // swallows whitespace on its left when matched
  bool rstrip = false;       // swallows whitespace on its right when matched
  bool single_word = false;  // matches only between non-word characters
  bool normalized = false;   // matched in the normalized text instead of the raw text
};

// A byte range [begin, end) of the encoded input text.
struct ByteSpan {
  uint32_t begin = 0;
  uint32_t end = 0;
};

class BpeTokenizer final : public Tokenizer {
 public:
  // tokenizer_config_json may be empty (no BOS/EOS/PAD names, no chat template, add_bos false).
  // Throws FormatError naming the file and the JSON key for anything malformed or unsupported.
  static std::unique_ptr<BpeTokenizer> from_files(const std::string& tokenizer_json,
                                                  const std::string& tokenizer_config_json);
  ~BpeTokenizer() override;
  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  // --- Tokenizer interface
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string id_to_piece(int32_t id) const override;
  int64_t vocab_size() const override;
  std::optional<int32_t> bos_id() const override;
  std::optional<int32_t> eos_id() const override;
  std::optional<int32_t> pad_id() const override;
  bool add_bos_by_default() const override;
  std::string kind() const override { return "bpe"; }

  // --- Encoding and decoding details
  // ids plus, for each id, the byte range of `text` it came from (the whole changed run where
  // normalization rewrote characters). Invalid UTF-8 in `text` is read as U+FFFD.
  std::vector<int32_t> encode_with_offsets(const std::string& text, std::vector<ByteSpan>& offsets) const;
  // skip_special_tokens drops added tokens marked special (Hugging Face decode's flag).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;
  // The id of a vocabulary token (byte-level form, e.g. "Ġthe") or added token content.
  std::optional<int32_t> token_to_id(const std::string& token) const;

  // --- What a GGUF exporter needs (tokenizer.ggml.*)
  // Every token in id order: vocabulary strings in their byte-level form, added token contents;
  // ids that no token uses are "[PAD<id>]" with type kUnused.
  const std::vector<std::string>& tokens() const;
  const std::vector<TokenType>& token_types() const;
  // Merges in rank order, each as "left right" (byte-level form).
  const std::vector<std::string>& merges() const;
  const std::vector<AddedToken>& added_tokens() const;
  // Regex patterns of the Split pre-tokenizers, in order (the GPT-2 pattern for ByteLevel with
  // use_regex): lets an exporter recognise the pre-tokenizer family (e.g. "qwen2").
  const std::vector<std::string>& pre_tokenizer_patterns() const;
  // Raw Jinja chat template from tokenizer_config.json ("" when absent), and the special token
  // strings the template refers to.
  const std::string& chat_template() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  const std::string& pad_token() const;

 private:
  struct State;
  explicit BpeTokenizer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace edgerazor::text
