// BpeTokenizer: encoding (added tokens -> normalizer -> pre-tokenizer -> BPE) and decoding.
// Loading from tokenizer.json lives in bpe_tokenizer_json.cpp.
#include <algorithm>
#include <climits>
#include <cstring>
#include <mutex>
#include <queue>
#include <stdexcept>

#include "bpe_internal.h"

namespace edgerazor::text {
namespace detail {

// ---------------------------------------------------------------------------------------------
// MergeTable, matcher, regex compilation

void MergeTable::reserve(size_t n) {
  size_t capacity = 16;
  while (capacity < n * 2) capacity <<= 1;
  slots_.assign(capacity, Entry{});
  mask_ = capacity - 1;
}

void MergeTable::insert(int32_t left, int32_t right, int32_t rank, int32_t id) {
  const uint64_t key = pack(left, right);
  for (uint64_t i = hash(key);; i = (i + 1) & mask_) {
    Entry& e = slots_[i];
    if (e.rank < 0) {
      e = Entry{key, rank, id};
      return;
    }
    if (e.key == key) return;
  }
}

void AddedTokenMatcher::build(const std::vector<AddedToken>& all, bool normalized) {
  tokens.clear();
  for (auto& list : by_first) list.clear();
  for (const AddedToken& t : all)
    if (!t.content.empty() && t.normalized == normalized) tokens.push_back(&t);
  std::stable_sort(tokens.begin(), tokens.end(), [](const AddedToken* a, const AddedToken* b) {
    return a->content.size() > b->content.size();
  });
  for (size_t i = 0; i < tokens.size(); ++i)
    by_first[static_cast<unsigned char>(tokens[i]->content[0])].push_back(static_cast<uint16_t>(i));
}

PcreCode compile_pattern(const std::string& pattern, bool literal, const std::string& source,
                         const std::string& key) {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  const uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0u);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error, &error_offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw FormatError(source, key + ": regex " + pattern + " does not compile at character " +
                                  std::to_string(error_offset) + ": " +
                                  reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
  return PcreCode(code);
}

}  // namespace detail

namespace {

using detail::BpeState;
using detail::PreTokenizerStep;
using detail::SplitBehavior;

// A pre-token: bytes to run BPE on, and where they came from. `data` points into the normalized
// text, or into an arena string when ByteLevel add_prefix_space prepended a space (synthetic = 1).
struct Piece {
  const char* data;
  uint32_t size;
  uint32_t origin;     // offset of data[synthetic] in the normalized text
  uint32_t synthetic;  // 1 when data[0] is an inserted space
};

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

struct MatchSpan {
  size_t begin, end;  // including stripped whitespace
  const AddedToken* token;
};

// Leftmost-longest added-token matches in s.
std::vector<MatchSpan> find_added_tokens(const detail::AddedTokenMatcher& m, std::string_view s) {
  std::vector<MatchSpan> found;
  size_t i = 0;
  while (i < s.size()) {
    const auto& candidates = m.by_first[static_cast<unsigned char>(s[i])];
    const AddedToken* hit = nullptr;
    for (uint16_t k : candidates) {
      const AddedToken* t = m.tokens[k];
      if (s.size() - i < t->content.size() || std::memcmp(s.data() + i, t->content.data(), t->content.size()) != 0)
        continue;
      if (t->single_word) {
        const size_t e = i + t->content.size();
        if ((i > 0 && is_word_byte(s[i - 1])) || (e < s.size() && is_word_byte(s[e]))) continue;
      }
      hit = t;
      break;
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t begin = i, end = i + hit->content.size();
    const size_t floor = found.empty() ? 0 : found.back().end;
    if (hit->lstrip)
      while (begin > floor && is_ascii_space(s[begin - 1])) --begin;
    if (hit->rstrip)
      while (end < s.size() && is_ascii_space(s[end])) ++end;
    found.push_back({begin, end, hit});
    i = end;
  }
  return found;
}

// One regex split of a piece according to a Split behaviour.
void split_piece(const Piece& piece, const PreTokenizerStep& step, pcre2_match_data* md,
                 std::vector<Piece>& out) {
  struct Part {
    uint32_t begin, end;
    bool match;
  };
  std::vector<Part> parts;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data);
  size_t pos = 0, last = 0;
  while (pos <= piece.size) {
    const int rc = pcre2_match(step.regex.get(), subject, piece.size, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {  // e.g. a match limit: never tokenize silently differently
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw std::runtime_error(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t mb = ov[0], me = ov[1];
    if (me == mb) {  // empty match: step one character
      if (mb >= piece.size) break;
      pos = mb + 1;
      while (pos < piece.size && (static_cast<unsigned char>(piece.data[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (mb > last) parts.push_back({static_cast<uint32_t>(last), static_cast<uint32_t>(mb), false});
    parts.push_back({static_cast<uint32_t>(mb), static_cast<uint32_t>(me), true});
    last = pos = me;
  }
  if (last < piece.size) parts.push_back({static_cast<uint32_t>(last), piece.size, false});
  if (step.invert)
    for (Part& p : parts) p.match = !p.match;

  std::vector<Part> merged;
  for (const Part& p : parts) {
    switch (step.behavior) {
      case SplitBehavior::kRemoved:
        if (!p.match) merged.push_back(p);
        break;
      case SplitBehavior::kIsolated:
        merged.push_back(p);
        break;
      case SplitBehavior::kMergedWithPrevious:
        if (p.match && !merged.empty() && !merged.back().match) merged.back().end = p.end, merged.back().match = true;
        else merged.push_back(p);
        break;
      case SplitBehavior::kMergedWithNext:
        if (!p.match && !merged.empty() && merged.back().match) merged.back().end = p.end, merged.back().match = false;
        else merged.push_back(p);
        break;
      case SplitBehavior::kContiguous:
        if (p.match && !merged.empty() && merged.back().match) merged.back().end = p.end;
        else merged.push_back(p);
        break;
    }
  }
  for (const Part& p : merged) {
    if (p.end == p.begin) continue;
    // Keep the synthetic prefix space only in the part that starts at byte 0.
    const uint32_t synthetic = (p.begin == 0) ? piece.synthetic : 0;
    const uint32_t origin = piece.origin + (p.begin > piece.synthetic ? p.begin - piece.synthetic : 0);
    out.push_back(Piece{piece.data + p.begin, p.end - p.begin, origin, synthetic});
  }
}

// Byte-level BPE of one pre-token. Lowest rank first, leftmost on ties (tokenizers' Word::merge_all).
void bpe_word(const BpeState& st, std::string_view bytes, std::vector<int32_t>& out) {
  if (st.ignore_merges) {
    auto it = st.token_to_id.find(bytes_to_byte_level(bytes));
    if (it != st.token_to_id.end() && it->second < static_cast<int32_t>(st.tokens.size())) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> sym;
  sym.reserve(bytes.size());
  for (char c : bytes) {
    const int32_t id = st.byte_ids[static_cast<unsigned char>(c)];
    if (id >= 0) sym.push_back(id);
    else if (st.unk_id) sym.push_back(*st.unk_id);
  }
  const size_t n = sym.size();
  if (n <= 48) {
    for (;;) {
      int32_t best_rank = INT32_MAX, best_id = 0;
      size_t best = SIZE_MAX;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        const auto* e = st.merge_table.find(sym[i], sym[i + 1]);
        if (e && e->rank < best_rank) best_rank = e->rank, best_id = e->id, best = i;
      }
      if (best == SIZE_MAX) break;
      sym[best] = best_id;
      sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    out.insert(out.end(), sym.begin(), sym.end());
    return;
  }
  // Long pre-tokens (whitespace runs, long words): linked list + min-heap, O(n log n).
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) prev[i] = static_cast<int32_t>(i) - 1, next[i] = static_cast<int32_t>(i) + 1;
  next[n - 1] = -1;
  struct Cand {
    int32_t rank, pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  const auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    if (const auto* e = st.merge_table.find(sym[i], sym[next[i]])) heap.push({e->rank, i, sym[i], sym[next[i]]});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const int32_t j = next[c.pos];
    if (sym[c.pos] != c.left || j < 0 || sym[j] != c.right || sym[c.pos] < 0) continue;
    sym[c.pos] = st.merge_table.find(c.left, c.right)->id;
    sym[j] = -1;  // removed
    next[c.pos] = next[j];
    if (next[j] >= 0) prev[next[j]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(sym[i]);
}

void bpe_cached(const BpeState& st, std::string_view bytes, std::vector<int32_t>& out) {
  constexpr size_t kMaxCachedBytes = 64, kMaxCacheEntries = 1 << 18;
  if (bytes.size() > kMaxCachedBytes) {
    bpe_word(st, bytes, out);
    return;
  }
  std::string key(bytes);
  {
    std::shared_lock lock(st.cache_mutex);
    auto it = st.cache.find(key);
    if (it != st.cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  bpe_word(st, bytes, out);
  std::unique_lock lock(st.cache_mutex);
  if (st.cache.size() < kMaxCacheEntries)
    st.cache.emplace(std::move(key), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};

// Normalized text segment -> ids (+ offsets in the original text via `alignment`).
// [begin, end) of `text`; alignment maps offsets in `text` to the original segment at `base`.
void encode_segment(const BpeState& st, std::string_view text, size_t begin, size_t end,
                    uint32_t base, const std::vector<uint32_t>* alignment,
                    std::vector<int32_t>& ids, std::vector<ByteSpan>* offsets) {
  if (end <= begin) return;
  std::vector<Piece> pieces{Piece{text.data() + begin, static_cast<uint32_t>(end - begin),
                                  static_cast<uint32_t>(begin), 0}};
  std::vector<std::string> arena;  // strings made by add_prefix_space
  arena.reserve(pieces.size() + 4);
  std::vector<Piece> next;
  for (const PreTokenizerStep& step : st.pre_steps) {
    if (step.kind == PreTokenizerStep::Kind::kByteLevel && step.add_prefix_space) {
      arena.reserve(arena.size() + pieces.size());
      for (Piece& p : pieces) {
        if (p.size > 0 && p.data[0] == ' ') continue;
        arena.push_back(" " + std::string(p.data, p.size));
        p = Piece{arena.back().data(), p.size + 1, p.origin, 1};
      }
    }
    if (!step.regex) continue;
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(
        pcre2_match_data_create_from_pattern(step.regex.get(), nullptr));
    next.clear();
    next.reserve(pieces.size() * 2);
    for (const Piece& p : pieces) split_piece(p, step, md.get(), next);
    pieces.swap(next);
  }
  const auto original = [&](uint32_t normalized_offset) {
    return alignment ? (*alignment)[normalized_offset] + base : normalized_offset + base;
  };
  for (const Piece& p : pieces) {
    const size_t first = ids.size();
    bpe_cached(st, std::string_view(p.data, p.size), ids);
    if (!offsets) continue;
    uint32_t pos = 0;  // byte position within p.data
    for (size_t k = first; k < ids.size(); ++k) {
      const auto len = static_cast<uint32_t>(st.token_bytes[static_cast<size_t>(ids[k])].size());
      const auto at = [&](uint32_t q) { return p.origin + (q > p.synthetic ? q - p.synthetic : 0); };
      offsets->push_back(ByteSpan{original(at(pos)), original(at(std::min(pos + len, p.size)))});
      pos += len;
    }
  }
}

void encode_impl(const BpeState& st, const std::string& input, std::vector<int32_t>& ids,
                 std::vector<ByteSpan>* offsets) {
  const std::string sanitized = sanitize_utf8(input);
  const std::string_view text = sanitized;
  const auto emit_added = [&](const MatchSpan& m, uint32_t begin, uint32_t end) {
    ids.push_back(m.token->id);
    if (offsets) offsets->push_back(ByteSpan{begin, end});
  };
  // Text between raw added tokens: normalize, split off normalized added tokens, pre-tokenize.
  const auto encode_text = [&](size_t begin, size_t end) {
    if (begin >= end) return;
    const std::string_view raw = text.substr(begin, end - begin);
    std::vector<uint32_t> alignment;
    std::string normalized;
    std::string_view view = raw;
    bool aligned = false;
    if (!st.normalizers.empty()) {
      normalized = std::string(raw);
      for (size_t k = 0; k < st.normalizers.size(); ++k) {
        std::vector<uint32_t> step_alignment;
        normalized = unicode_normalize(normalized, st.normalizers[k], offsets ? &step_alignment : nullptr);
        if (offsets) {
          if (aligned)
            for (uint32_t& a : step_alignment) a = alignment[a];
          alignment.swap(step_alignment);
          aligned = true;
        }
      }
      view = normalized;
    }
    const std::vector<uint32_t>* align = aligned ? &alignment : nullptr;
    const auto base = static_cast<uint32_t>(begin);
    size_t cursor = 0;
    if (!st.normalized_matcher.empty()) {
      for (const MatchSpan& m : find_added_tokens(st.normalized_matcher, view)) {
        encode_segment(st, view, cursor, m.begin, base, align, ids, offsets);
        emit_added(m, align ? (*align)[m.begin] + base : static_cast<uint32_t>(m.begin) + base,
                   align ? (*align)[m.end] + base : static_cast<uint32_t>(m.end) + base);
        cursor = m.end;
      }
    }
    encode_segment(st, view, cursor, view.size(), base, align, ids, offsets);
  };
  size_t cursor = 0;
  for (const MatchSpan& m : find_added_tokens(st.raw_matcher, text)) {
    encode_text(cursor, m.begin);
    emit_added(m, static_cast<uint32_t>(m.begin), static_cast<uint32_t>(m.end));
    cursor = m.end;
  }
  encode_text(cursor, text.size());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// BpeTokenizer

BpeTokenizer::BpeTokenizer(std::unique_ptr<State> state) : state_(std::move(state)) {}
BpeTokenizer::~BpeTokenizer() = default;

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  encode_impl(*state_, text, ids, nullptr);
  return ids;
}

std::vector<int32_t> BpeTokenizer::encode_with_offsets(const std::string& text,
                                                       std::vector<ByteSpan>& offsets) const {
  std::vector<int32_t> ids;
  offsets.clear();
  encode_impl(*state_, text, ids, &offsets);
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const { return decode(ids, false); }

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= state_->tokens.size()) continue;  // as tokenizers: unknown ids vanish
    if (skip_special_tokens && state_->special[static_cast<size_t>(id)]) continue;
    bytes += state_->token_bytes[static_cast<size_t>(id)];
  }
  return sanitize_utf8(bytes);
}

std::string BpeTokenizer::id_to_piece(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= state_->tokens.size()) return "";
  return state_->tokens[static_cast<size_t>(id)];
}

std::optional<int32_t> BpeTokenizer::token_to_id(const std::string& token) const {
  auto it = state_->token_to_id.find(token);
  if (it == state_->token_to_id.end()) return std::nullopt;
  return it->second;
}

int64_t BpeTokenizer::vocab_size() const { return static_cast<int64_t>(state_->tokens.size()); }
std::optional<int32_t> BpeTokenizer::bos_id() const { return state_->bos_id; }
std::optional<int32_t> BpeTokenizer::eos_id() const { return state_->eos_id; }
std::optional<int32_t> BpeTokenizer::pad_id() const { return state_->pad_id; }
bool BpeTokenizer::add_bos_by_default() const { return state_->add_bos; }
const std::vector<std::string>& BpeTokenizer::tokens() const { return state_->tokens; }
const std::vector<TokenType>& BpeTokenizer::token_types() const { return state_->types; }
const std::vector<std::string>& BpeTokenizer::merges() const { return state_->merges; }
const std::vector<AddedToken>& BpeTokenizer::added_tokens() const { return state_->added; }
const std::vector<std::string>& BpeTokenizer::pre_tokenizer_patterns() const { return state_->pre_patterns; }
const std::string& BpeTokenizer::chat_template() const { return state_->chat_template; }
const std::string& BpeTokenizer::bos_token() const { return state_->bos_token; }
const std::string& BpeTokenizer::eos_token() const { return state_->eos_token; }
const std::string& BpeTokenizer::pad_token() const { return state_->pad_token; }

}  // namespace edgerazor::text
