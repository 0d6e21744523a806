// UTF-8 helpers, ICU-backed normalization with alignment, and the byte-level alphabet.
#include "edgerazor/text/unicode.h"

#include <stdexcept>

#if defined(EDGERAZOR_HAVE_ICU)  // the build links icu-uc
#include <unicode/unorm2.h>  // defines: UNormalizer2, unorm2_get*Instance, unorm2_normalize
#endif

namespace edgerazor::text {

// ---------------------------------------------------------------------------------------------
// UTF-8

char32_t utf8_next(std::string_view s, size_t& pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  int need = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    ++pos;
    return kReplacementChar;
  }
  size_t i = pos + 1;
  for (int k = 0; k < need; ++k, ++i) {
    if (i >= s.size()) {
      pos = i;
      return kReplacementChar;
    }
    const unsigned char b = byte(i);
    const unsigned char l = k == 0 ? lo : 0x80, h = k == 0 ? hi : 0xBF;
    if (b < l || b > h) {
      pos = i;  // the maximal invalid subpart ends before the offending byte
      return kReplacementChar;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  pos = i;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_valid_utf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t start = pos;
    if (utf8_next(s, pos) == kReplacementChar) {
      // A literal U+FFFD (EF BF BD) is valid; a replacement for bad bytes is not.
      if (pos - start != 3 || s.compare(start, 3, "\xEF\xBF\xBD") != 0) return false;
    }
  }
  return true;
}

Utf8Damage count_invalid_utf8(std::string_view s) {
  Utf8Damage d;
  size_t pos = 0;
  while (pos < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[pos]);
    if (c < 0x80) {  // ASCII fast path
      ++pos;
      continue;
    }
    const size_t at = pos;
    // utf8_next yields U+FFFD for an invalid sequence; a literal U+FFFD (EF BF BD) is valid.
    if (utf8_next(s, pos) == kReplacementChar && !(pos - at == 3 && s.compare(at, 3, "\xEF\xBF\xBD") == 0)) {
      if (d.invalid_sequences == 0) d.first_offset = at;
      ++d.invalid_sequences;
    }
  }
  return d;
}

std::string describe_invalid_utf8(std::string_view s, const std::string& source) {
  const Utf8Damage d = count_invalid_utf8(s);
  if (d.invalid_sequences == 0) return "";
  return "warning: " + source + ": " + std::to_string(d.invalid_sequences) + " invalid UTF-8 sequence(s), the first at byte " +
         std::to_string(d.first_offset) + ", were replaced by U+FFFD";
}

std::string sanitize_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t pos = 0;
  while (pos < s.size()) append_utf8(out, utf8_next(s, pos));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalization through ICU (linked when the build defines EDGERAZOR_HAVE_ICU).

namespace {

#if defined(EDGERAZOR_HAVE_ICU)
std::u16string to_utf16(std::string_view s) {
  std::u16string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    const char32_t cp = utf8_next(s, pos);
    if (cp >= 0x10000) {
      out += static_cast<char16_t>(0xD800 + ((cp - 0x10000) >> 10));
      out += static_cast<char16_t>(0xDC00 + ((cp - 0x10000) & 0x3FF));
    } else {
      out += static_cast<char16_t>(cp);
    }
  }
  return out;
}

std::string from_utf16(const std::u16string& s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t cp = s[i];
    if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < s.size() && s[i + 1] >= 0xDC00 && s[i + 1] < 0xE000) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (s[i + 1] - 0xDC00);
      ++i;
    }
    append_utf8(out, cp);
  }
  return out;
}

std::string icu_normalize(std::string_view s, NormalizationForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* normalizer = form == NormalizationForm::kNFC    ? unorm2_getNFCInstance(&status)
                                   : form == NormalizationForm::kNFD  ? unorm2_getNFDInstance(&status)
                                   : form == NormalizationForm::kNFKC ? unorm2_getNFKCInstance(&status)
                                                                      : unorm2_getNFKDInstance(&status);
  if (U_FAILURE(status)) throw std::runtime_error("ICU: cannot get a normalizer instance");
  const std::u16string in = to_utf16(s);
  std::u16string out(in.size() * 3 + 16, u'\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    status = U_ZERO_ERROR;
    const int32_t n = unorm2_normalize(normalizer, reinterpret_cast<const UChar*>(in.data()),
                                    static_cast<int32_t>(in.size()),
                                    reinterpret_cast<UChar*>(out.data()),
                                    static_cast<int32_t>(out.size()), &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
      out.assign(static_cast<size_t>(n) + 1, u'\0');
      continue;
    }
    if (U_FAILURE(status)) throw std::runtime_error("ICU: normalization failed");
    out.resize(static_cast<size_t>(n));
    return from_utf16(out);
  }
  throw std::runtime_error("ICU: normalization buffer keeps overflowing");
}
#else
std::string icu_normalize(std::string_view, NormalizationForm) {
  throw std::runtime_error("Unicode normalization needs ICU, which this build was made without");
}
#endif

// A character that every normalization form leaves unchanged when it stands before another such
// character: below U+0300 for NFC (no combining marks, no composition), ASCII for the others.
bool is_stable(char32_t cp, NormalizationForm form) {
  return form == NormalizationForm::kNFC ? cp < 0x300 : cp < 0x80;
}

void append_identity(std::string& out, std::vector<uint32_t>* alignment, std::string_view s,
                     size_t begin, size_t end) {
  out.append(s.data() + begin, end - begin);
  if (alignment)
    for (size_t i = begin; i < end; ++i) alignment->push_back(static_cast<uint32_t>(i));
}

}  // namespace

bool unicode_normalization_available() {
#if defined(EDGERAZOR_HAVE_ICU)
  return true;
#else
  return false;
#endif
}

std::string unicode_normalize(std::string_view s, NormalizationForm form,
                              std::vector<uint32_t>* alignment) {
  std::string out;
  if (alignment) alignment->clear();
  bool all_stable = true;
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= (form == NormalizationForm::kNFC ? 0xCC : 0x80)) {
      all_stable = false;
      break;
    }
  }
  if (all_stable) {
    append_identity(out, alignment, s, 0, s.size());
    if (alignment) alignment->push_back(static_cast<uint32_t>(s.size()));
    return out;
  }
  if (!alignment) return icu_normalize(s, form);
  // Every character below U+0300 starts a new normalization segment (it has combining class 0
  // and never composes with what precedes it), so runs between such characters normalize on
  // their own. Runs that normalization leaves alone keep a byte-exact alignment.
  out.reserve(s.size());
  size_t start = 0, last_boundary = 0, pos = 0;
  bool dirty = false;
  const auto flush_dirty = [&](size_t end) {
    const std::string piece = icu_normalize(s.substr(start, end - start), form);
    if (piece == s.substr(start, end - start)) {
      append_identity(out, alignment, s, start, end);
    } else {
      out += piece;
      alignment->insert(alignment->end(), piece.size(), static_cast<uint32_t>(start));
    }
  };
  while (pos < s.size()) {
    const size_t here = pos;
    const char32_t cp = utf8_next(s, pos);
    if (cp < 0x300) {
      if (dirty) {
        flush_dirty(here);
        start = here;
        dirty = false;
      }
      last_boundary = here;
    }
    if (!dirty && !is_stable(cp, form)) {
      append_identity(out, alignment, s, start, last_boundary);
      start = last_boundary;
      dirty = true;
    }
  }
  if (dirty) {
    flush_dirty(s.size());
  } else {
    append_identity(out, alignment, s, start, s.size());
  }
  alignment->push_back(static_cast<uint32_t>(s.size()));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Byte-level alphabet

const std::array<char32_t, 256>& byte_level_alphabet() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

int byte_level_decode(char32_t cp) {
  static const std::array<int16_t, 512> inverse = [] {
    std::array<int16_t, 512> t{};
    t.fill(-1);
    const auto& alphabet = byte_level_alphabet();
    for (int b = 0; b < 256; ++b) t[alphabet[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& alphabet = byte_level_alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, alphabet[static_cast<unsigned char>(c)]);
  return out;
}

bool byte_level_to_bytes(std::string_view byte_level, std::string& out) {
  out.clear();
  size_t pos = 0;
  while (pos < byte_level.size()) {
    const int b = byte_level_decode(utf8_next(byte_level, pos));
    if (b < 0) return false;
    out += static_cast<char>(b);
  }
  return true;
}

}  // namespace edgerazor::text
