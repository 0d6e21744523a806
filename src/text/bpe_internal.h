// Private to src/text: BpeTokenizer's state, shared by the loader (bpe_tokenizer_json.cpp) and
// the encoder/decoder (bpe_tokenizer.cpp).
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>  // defines: pcre2_code, pcre2_compile, pcre2_match

#include <array>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "edgerazor/core/error.h"
#include "edgerazor/text/bpe_tokenizer.h"
#include "edgerazor/text/unicode.h"

namespace edgerazor::text::detail {

// A tokenizer.json that is well-formed but uses a component this tokenizer does not implement
// (e.g. a SentencePiece-style Metaspace/byte_fallback BPE). load_tokenizer falls back to
// tokenizer.model when it sees this.
class UnsupportedTokenizerError : public FormatError {
 public:
  using FormatError::FormatError;
};

// Open-addressing map (left id, right id) -> (merge rank, merged id): the hot lookup of BPE.
class MergeTable {
 public:
  struct Entry {
    uint64_t key = 0;
    int32_t rank = -1;  // -1: empty slot
    int32_t id = 0;
  };
  void reserve(size_t n);
  // Keeps the first (lowest-rank) entry when a pair repeats, as tokenizers does.
  void insert(int32_t left, int32_t right, int32_t rank, int32_t id);
  const Entry* find(int32_t left, int32_t right) const {
    const uint64_t key = pack(left, right);
    for (uint64_t i = hash(key);; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.rank < 0) return nullptr;
      if (e.key == key) return &e;
    }
  }

 private:
  static uint64_t pack(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  uint64_t hash(uint64_t key) const { return ((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
  std::vector<Entry> slots_;
  uint64_t mask_ = 0;
};

struct PcreCodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
using PcreCode = std::unique_ptr<pcre2_code, PcreCodeDeleter>;

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
  PcreCode regex;  // Split pattern; for ByteLevel the GPT-2 pattern when use_regex, else null
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel only
};

// Finds added tokens in text, leftmost-longest (tokenizers uses Aho-Corasick LeftmostLongest).
struct AddedTokenMatcher {
  std::vector<const AddedToken*> tokens;            // longest first
  std::array<std::vector<uint16_t>, 256> by_first;  // indices into tokens, by first byte
  void build(const std::vector<AddedToken>& all, bool normalized);
  bool empty() const { return tokens.empty(); }
};

struct BpeState {
  std::string source;  // tokenizer.json path, for messages

  // Vocabulary, in id order (tokens/types as exported; bytes = what each id decodes to).
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  std::vector<std::string> token_bytes;
  std::vector<uint8_t> special;
  std::unordered_map<std::string, int32_t> token_to_id;  // vocab (byte-level form) + added contents
  std::array<int32_t, 256> byte_ids{};                   // id of each single-byte token, -1 if none
  std::optional<int32_t> unk_id;

  MergeTable merge_table;
  std::vector<std::string> merges;
  bool ignore_merges = false;

  std::vector<NormalizationForm> normalizers;
  std::vector<PreTokenizerStep> pre_steps;
  std::vector<std::string> pre_patterns;

  std::vector<AddedToken> added;
  AddedTokenMatcher raw_matcher, normalized_matcher;

  std::string bos_token, eos_token, pad_token, chat_template;
  std::optional<int32_t> bos_id, eos_id, pad_id;
  bool add_bos = false;

  // Pre-token bytes -> ids. Bounded; readers take a shared lock.
  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
};

// Compiles a Split / ByteLevel pattern with UTF + UCP and JIT. Throws FormatError(source, ...).
PcreCode compile_pattern(const std::string& pattern, bool literal, const std::string& source,
                         const std::string& key);

}  // namespace edgerazor::text::detail

namespace edgerazor::text {
struct BpeTokenizer::State : detail::BpeState {};
}  // namespace edgerazor::text
