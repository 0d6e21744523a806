// Implements: a reader for SentencePiece .model files (the piece table and the flags that
// decoding and BPE encoding need) without libprotobuf, and a Tokenizer on top of it.
// Torch-free; used by the torch tools, which must not link libsentencepiece (DESIGN.md).
//
// The file is a protobuf ModelProto (sentencepiece_model.proto). Fields read:
//   1 pieces (repeated message): 1 piece (string), 2 score (float), 3 type (enum: 1 NORMAL,
//     2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE)
//   2 trainer_spec: 3 model_type (1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR), 35 byte_fallback,
//     40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id, 24 treat_whitespace_as_suffix
//   3 normalizer_spec: 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
//     4 remove_extra_whitespaces, 5 escape_whitespaces
// Everything else is skipped by wire type. Every length is checked against the bytes left.
//
// Encoding implements SentencePiece's BPE (bpe_model.cc): the normalized text is split into
// characters, adjacent pairs whose concatenation is a piece are merged highest score first
// (leftmost on ties), and symbols left without a piece become <0xXX> byte pieces
// (byte_fallback) or unk. Only the identity normalizer is supported for encoding; other
// models (unigram, nmt_nfkc) decode fine but encode through edgerazor-data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "edgerazor/text/tokenizer.h"

namespace edgerazor::text {

enum class PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct SentencePieceModel {
  struct Piece {
    std::string piece;
    float score = 0.0f;
    PieceType type = PieceType::kNormal;
  };
  std::vector<Piece> pieces;
  int model_type = 1;  // 1 unigram, 2 bpe, 3 word, 4 char
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string normalizer_name;  // empty when the file has no normalizer_spec
  bool has_precompiled_charsmap = false;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Parses .model bytes; throws FormatError(path, offset, ...) on a malformed or truncated file.
SentencePieceModel parse_sentencepiece_model(const std::string& bytes, const std::string& path);

// Text longer than max_bytes cut into pieces that SentencePiece encodes to the same ids one by
// one as whole: cuts fall only on a single ASCII space between two non-space characters (a word
// boundary in every whitespace mode), and with add_dummy_prefix the space is left out, because
// the dummy prefix of the next piece stands for it. Encoding one 50 MB line whole took minutes and
// gigabytes (the BPE agenda grows with the line); in pieces it is linear. Text without such a
// space within 4 * max_bytes stays whole there. A cut at or before max_bytes is preferred, so a
// piece is longer than max_bytes only where no earlier cut exists.
std::vector<std::string_view> sentencepiece_chunks(std::string_view text, size_t max_bytes, bool add_dummy_prefix);
inline constexpr size_t kSentencePieceChunkBytes = 64 << 10;
SentencePieceModel read_sentencepiece_model(const std::string& path);

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(SentencePieceModel model);

  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string id_to_piece(int32_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(model_.pieces.size()); }
  std::optional<int32_t> bos_id() const override;
  std::optional<int32_t> eos_id() const override;
  std::optional<int32_t> pad_id() const override;
  bool add_bos_by_default() const override { return bos_id().has_value(); }
  std::string kind() const override { return "sentencepiece"; }

  // Whether encode() can reproduce libsentencepiece for this model (BPE + identity normalizer).
  bool can_encode() const;
  const SentencePieceModel& model() const { return model_; }
  // The piece of one id with U+2581 shown as a space and <0xXX> as its byte (for streaming).
  std::string decode_piece(int32_t id, bool first) const;

 private:
  std::vector<int32_t> encode_whole(const std::string& text) const;
  std::string normalize(const std::string& text) const;
  std::optional<int32_t> id_or_none(int32_t id) const;

  SentencePieceModel model_;
  std::unordered_map<std::string, int32_t> piece_ids_;  // NORMAL / USER_DEFINED / UNUSED pieces
  std::vector<std::string> user_defined_;               // longest first
  int32_t byte_ids_[256];
};

}  // namespace edgerazor::text
