// SentencePiece .model reader (protobuf wire format, no libprotobuf) and BPE tokenizer.
#include "edgerazor/text/sentencepiece_model.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <queue>
#include <sstream>

#include "edgerazor/core/error.h"
#include "edgerazor/text/unicode.h"

namespace edgerazor::text {
namespace {

constexpr const char* kSpaceSymbol = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK
constexpr const char* kUnkSurface = " \xE2\x81\x87 ";  // " ⁇ ", SentencePiece's unk surface

// Minimal protobuf wire reader over [begin, end) of a buffer; offsets are absolute in the file.
class WireReader {
 public:
  WireReader(const std::string& buf, size_t begin, size_t end, const std::string& path)
      : buf_(buf), pos_(begin), end_(end), path_(path) {}
  bool done() const { return pos_ >= end_; }
  size_t offset() const { return pos_; }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= end_) throw FormatError(path_, pos_, "truncated varint");
      const uint8_t b = static_cast<uint8_t>(buf_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw FormatError(path_, pos_, "varint longer than 10 bytes");
  }
  // Reads a length-delimited field: returns [begin, end) of its payload.
  std::pair<size_t, size_t> bytes() {
    const size_t at = pos_;
    const uint64_t len = varint();
    if (len > end_ - pos_)
      throw FormatError(path_, at, "field length " + std::to_string(len) + " runs past the end of its message (" +
                                       std::to_string(end_ - pos_) + " bytes left; truncated file?)");
    const size_t b = pos_;
    pos_ += len;
    return {b, pos_};
  }
  uint32_t fixed32() {
    if (end_ - pos_ < 4) throw FormatError(path_, pos_, "truncated 32-bit field");
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(buf_[pos_ + i]);
    pos_ += 4;
    return v;
  }
  float float32() {
    const uint32_t bits = fixed32();
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  void skip(int wire_type) {
    switch (wire_type) {
      case 0: varint(); return;
      case 1:
        if (end_ - pos_ < 8) throw FormatError(path_, pos_, "truncated 64-bit field");
        pos_ += 8;
        return;
      case 2: bytes(); return;
      case 5: fixed32(); return;
      default: throw FormatError(path_, pos_, "unsupported protobuf wire type " + std::to_string(wire_type));
    }
  }

 private:
  const std::string& buf_;
  size_t pos_, end_;
  const std::string& path_;
};

// A byte piece is named "<0xHH>"; the byte it stands for, or -1 when the name is not of that form.
int byte_piece_value(const std::string& piece) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  const int high = hex(piece[3]), low = hex(piece[4]);
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

SentencePieceModel::Piece parse_piece(const std::string& buf, std::pair<size_t, size_t> range, const std::string& path) {
  SentencePieceModel::Piece p;
  WireReader r(buf, range.first, range.second, path);
  while (!r.done()) {
    const size_t at = r.offset();
    const uint64_t tag = r.varint();
    const int field = static_cast<int>(tag >> 3), wt = static_cast<int>(tag & 7);
    if (field == 1 && wt == 2) {
      const auto s = r.bytes();
      p.piece = buf.substr(s.first, s.second - s.first);
    } else if (field == 2 && wt == 5) {
      p.score = r.float32();
    } else if (field == 3 && wt == 0) {
      const uint64_t t = r.varint();
      if (t < 1 || t > 6) throw FormatError(path, at, "piece '" + p.piece + "' has unknown type " + std::to_string(t));
      p.type = static_cast<PieceType>(t);
    } else {
      r.skip(wt);
    }
  }
  if (p.type == PieceType::kByte && byte_piece_value(p.piece) < 0)
    throw FormatError(path, range.first, "byte piece '" + p.piece + "' is not of the form <0xHH>");
  return p;
}

}  // namespace

SentencePieceModel parse_sentencepiece_model(const std::string& buf, const std::string& path) {
  SentencePieceModel m;
  WireReader top(buf, 0, buf.size(), path);
  while (!top.done()) {
    const uint64_t tag = top.varint();
    const int field = static_cast<int>(tag >> 3), wt = static_cast<int>(tag & 7);
    if (field == 1 && wt == 2) {
      m.pieces.push_back(parse_piece(buf, top.bytes(), path));
    } else if (field == 2 && wt == 2) {  // trainer_spec
      const auto range = top.bytes();
      WireReader r(buf, range.first, range.second, path);
      while (!r.done()) {
        const uint64_t t = r.varint();
        const int f = static_cast<int>(t >> 3), w = static_cast<int>(t & 7);
        if (w != 0) {
          r.skip(w);
          continue;
        }
        const int64_t v = static_cast<int64_t>(r.varint());
        switch (f) {
          case 3: m.model_type = static_cast<int>(v); break;
          case 24: m.treat_whitespace_as_suffix = v != 0; break;
          case 35: m.byte_fallback = v != 0; break;
          case 40: m.unk_id = static_cast<int32_t>(v); break;
          case 41: m.bos_id = static_cast<int32_t>(v); break;
          case 42: m.eos_id = static_cast<int32_t>(v); break;
          case 43: m.pad_id = static_cast<int32_t>(v); break;
          default: break;
        }
      }
    } else if (field == 3 && wt == 2) {  // normalizer_spec
      const auto range = top.bytes();
      WireReader r(buf, range.first, range.second, path);
      while (!r.done()) {
        const uint64_t t = r.varint();
        const int f = static_cast<int>(t >> 3), w = static_cast<int>(t & 7);
        if (f == 1 && w == 2) {
          const auto s = r.bytes();
          m.normalizer_name = buf.substr(s.first, s.second - s.first);
        } else if (f == 2 && w == 2) {
          const auto s = r.bytes();
          m.has_precompiled_charsmap = s.second > s.first;
        } else if (f >= 3 && f <= 5 && w == 0) {
          const bool v = r.varint() != 0;
          (f == 3 ? m.add_dummy_prefix : f == 4 ? m.remove_extra_whitespaces : m.escape_whitespaces) = v;
        } else {
          r.skip(w);
        }
      }
    } else {
      top.skip(wt);
    }
  }
  if (m.pieces.empty()) throw FormatError(path, "no pieces (not a SentencePiece model?)");
  const int32_t n = static_cast<int32_t>(m.pieces.size());
  for (int32_t* id : {&m.unk_id, &m.bos_id, &m.eos_id, &m.pad_id})
    if (*id >= n) throw FormatError(path, "special token id " + std::to_string(*id) + " >= vocabulary size " + std::to_string(n));
  return m;
}

SentencePieceModel read_sentencepiece_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path, "cannot open SentencePiece model");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_sentencepiece_model(ss.str(), path);
}

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& model_file) {
  return std::make_unique<SentencePieceTokenizer>(read_sentencepiece_model(model_file));
}

// ---------------------------------------------------------------------------------------------
SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceModel model) : model_(std::move(model)) {
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  for (int32_t i = 0; i < static_cast<int32_t>(model_.pieces.size()); ++i) {
    const auto& p = model_.pieces[i];
    if (p.type == PieceType::kNormal || p.type == PieceType::kUserDefined || p.type == PieceType::kUnused)
      piece_ids_.emplace(p.piece, i);
    if (p.type == PieceType::kUserDefined) user_defined_.push_back(p.piece);
    if (p.type == PieceType::kByte && byte_piece_value(p.piece) >= 0) byte_ids_[byte_piece_value(p.piece)] = i;
  }
  std::sort(user_defined_.begin(), user_defined_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::optional<int32_t> SentencePieceTokenizer::id_or_none(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(model_.pieces.size())) return std::nullopt;
  return id;
}
std::optional<int32_t> SentencePieceTokenizer::bos_id() const { return id_or_none(model_.bos_id); }
std::optional<int32_t> SentencePieceTokenizer::eos_id() const { return id_or_none(model_.eos_id); }
std::optional<int32_t> SentencePieceTokenizer::pad_id() const { return id_or_none(model_.pad_id); }

std::string SentencePieceTokenizer::id_to_piece(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(model_.pieces.size())) return "";
  return model_.pieces[id].piece;
}

bool SentencePieceTokenizer::can_encode() const {
  return model_.model_type == 2 && !model_.has_precompiled_charsmap &&
         (model_.normalizer_name.empty() || model_.normalizer_name == "identity") && !model_.treat_whitespace_as_suffix;
}

std::string SentencePieceTokenizer::normalize(const std::string& text) const {
  std::string s = text;
  if (model_.remove_extra_whitespaces) {  // trim, and collapse runs of spaces
    std::string out;
    bool prev_space = true;
    for (char c : s) {
      if (c == ' ') {
        if (!prev_space) out += ' ';
        prev_space = true;
      } else {
        out += c;
        prev_space = false;
      }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    s = out;
  }
  if (s.empty()) return s;
  if (model_.add_dummy_prefix) s.insert(s.begin(), ' ');
  if (!model_.escape_whitespaces) return s;
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) {
    if (c == ' ') out += kSpaceSymbol;
    else out += c;
  }
  return out;
}

std::vector<std::string_view> sentencepiece_chunks(std::string_view text, size_t max_bytes, bool add_dummy_prefix) {
  std::vector<std::string_view> out;
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  size_t begin = 0;
  while (text.size() - begin > max_bytes) {
    auto is_cut = [&](size_t i) { return text[i] == ' ' && !blank(text[i - 1]) && !blank(text[i + 1]); };
    size_t cut = std::string_view::npos;
    for (size_t i = std::min(begin + max_bytes, text.size() - 2); i > begin; --i)  // the last cut that keeps the piece within max_bytes
      if (is_cut(i)) {
        cut = i;
        break;
      }
    const size_t limit = std::min(text.size() - 1, begin + 4 * max_bytes);
    for (size_t i = begin + max_bytes + 1; cut == std::string_view::npos && i < limit; ++i)
      if (is_cut(i)) cut = i;
    if (cut == std::string_view::npos) break;
    out.push_back(text.substr(begin, cut - begin));
    begin = add_dummy_prefix ? cut + 1 : cut;
  }
  out.push_back(text.substr(begin));
  return out;
}

std::vector<int32_t> SentencePieceTokenizer::encode(const std::string& text) const {
  if (text.size() > kSentencePieceChunkBytes) {
    std::vector<int32_t> ids;
    for (const auto piece : sentencepiece_chunks(text, kSentencePieceChunkBytes, model_.add_dummy_prefix)) {
      const auto part = encode_whole(std::string(piece));
      ids.insert(ids.end(), part.begin(), part.end());
    }
    return ids;
  }
  return encode_whole(text);
}

std::vector<int32_t> SentencePieceTokenizer::encode_whole(const std::string& text) const {
  if (!can_encode())
    throw std::runtime_error("this SentencePiece model (type " + std::to_string(model_.model_type) + ", normalizer '" +
                             model_.normalizer_name +
                             "') cannot be encoded without libsentencepiece; tokenize with edgerazor-data encode");
  const std::string s = normalize(text);
  // Symbols as a doubly linked list over byte ranges of s.
  struct Symbol {
    int prev, next;
    size_t begin, len;
  };
  std::vector<Symbol> sym;
  for (size_t pos = 0; pos < s.size();) {
    size_t len = 0;
    for (const auto& u : user_defined_)  // user-defined pieces are never split
      if (s.compare(pos, u.size(), u) == 0) {
        len = u.size();
        break;
      }
    if (len == 0) {
      size_t next = pos;
      utf8_next(s, next);
      len = next - pos;
    }
    sym.push_back({static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1, pos, len});
    pos += len;
  }
  if (sym.empty()) return {};
  sym.back().next = -1;

  // Agenda: highest score first, then leftmost.
  struct Pair {
    float score;
    int left, right;
    size_t len;  // combined length when queued, to detect stale entries
  };
  auto worse = [](const Pair& a, const Pair& b) { return a.score != b.score ? a.score < b.score : a.left > b.left; };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> agenda(worse);
  auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t len = sym[left].len + sym[right].len;
    auto it = piece_ids_.find(s.substr(sym[left].begin, len));
    if (it == piece_ids_.end() || model_.pieces[it->second].type == PieceType::kUnused) return;
    agenda.push({model_.pieces[it->second].score, left, right, len});
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) try_pair(i, i + 1);
  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = sym[top.left];
    if (l.len == 0 || l.next != top.right || sym[top.right].len == 0 || l.len + sym[top.right].len != top.len)
      continue;  // stale
    Symbol& r = sym[top.right];
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = top.left;
    r.len = 0;
    try_pair(l.prev, top.left);
    try_pair(top.left, l.next);
  }
  std::vector<int32_t> ids;
  for (int i = 0; i >= 0; i = sym[i].next) {
    const std::string piece = s.substr(sym[i].begin, sym[i].len);
    auto it = piece_ids_.find(piece);
    if (it != piece_ids_.end()) {
      ids.push_back(it->second);
    } else if (model_.byte_fallback) {
      for (unsigned char b : piece) ids.push_back(byte_ids_[b] >= 0 ? byte_ids_[b] : model_.unk_id);
    } else {
      ids.push_back(model_.unk_id);
    }
  }
  return ids;
}

std::string SentencePieceTokenizer::decode_piece(int32_t id, bool first) const {
  if (id < 0 || id >= static_cast<int32_t>(model_.pieces.size())) return "";
  const auto& p = model_.pieces[id];
  switch (p.type) {
    case PieceType::kControl: return "";
    case PieceType::kUnknown: return kUnkSurface;
    case PieceType::kByte:
      return byte_piece_value(p.piece) < 0 ? "" : std::string(1, static_cast<char>(byte_piece_value(p.piece)));
    default: break;
  }
  std::string out;
  for (size_t pos = 0; pos < p.piece.size();) {
    if (p.piece.compare(pos, 3, kSpaceSymbol) == 0) {
      out += ' ';
      pos += 3;
    } else {
      out += p.piece[pos++];
    }
  }
  if (first && model_.add_dummy_prefix && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  bool first = true;  // the dummy prefix is dropped from the first piece that produces text
  for (int32_t id : ids) {
    const std::string piece = decode_piece(id, first);
    if (first && id >= 0 && id < static_cast<int32_t>(model_.pieces.size()) &&
        model_.pieces[id].type != PieceType::kControl)
      first = false;
    out += piece;
  }
  return sanitize_utf8(out);
}

}  // namespace edgerazor::text
