// Implements: UTF-8 decoding/encoding with U+FFFD replacement, Unicode normalization (NFC, NFD,
// NFKC, NFKD through ICU) with a byte alignment back to the input, and the GPT-2 byte-level
// alphabet (each byte <-> one printable code point) used by byte-level BPE vocabularies.
// Torch-free.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgerazor::text {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Decodes the code point at s[pos] and advances pos. An invalid sequence yields U+FFFD and pos
// advances past its maximal invalid subpart (the Unicode / Python / Rust from_utf8_lossy rule).
char32_t utf8_next(std::string_view s, size_t& pos);
void append_utf8(std::string& out, char32_t cp);
bool is_valid_utf8(std::string_view s);
// s with every invalid sequence replaced by U+FFFD ("errors=replace").
std::string sanitize_utf8(std::string_view s);

// Invalid sequences in s (each one U+FFFD after sanitize_utf8) and the byte offset of the first.
struct Utf8Damage {
  uint64_t invalid_sequences = 0;
  uint64_t first_offset = 0;
};
Utf8Damage count_invalid_utf8(std::string_view s);
// "" for valid text, else "warning: <source>: N invalid UTF-8 sequence(s), the first at byte B,
// were replaced by U+FFFD" (tokenizers encode the replacement character, not the bytes).
std::string describe_invalid_utf8(std::string_view s, const std::string& source);

enum class NormalizationForm { kNFC, kNFD, kNFKC, kNFKD };

// Normalizes valid UTF-8 text. When alignment is given it receives, for every byte of the result
// plus one past the end, the byte offset in `s` it came from (exact where normalization left the
// text alone, the start of the changed run of characters elsewhere). Throws std::runtime_error
// if text needing normalization is met in a build without ICU.
std::string unicode_normalize(std::string_view s, NormalizationForm form,
                              std::vector<uint32_t>* alignment = nullptr);
// Whether this build has ICU normalization (EDGERAZOR_HAVE_ICU).
bool unicode_normalization_available();

// GPT-2 byte-level alphabet: bytes 33-126, 161-172, 174-255 map to themselves, the other 68
// bytes to U+0100.. in byte order. byte_level_decode returns -1 for a code point outside it.
const std::array<char32_t, 256>& byte_level_alphabet();
int byte_level_decode(char32_t cp);
// Raw bytes -> their byte-level string ("Ġthe" for " the"), and back. byte_level_to_bytes
// returns false (leaving out unspecified) when a character is outside the alphabet.
std::string bytes_to_byte_level(std::string_view bytes);
bool byte_level_to_bytes(std::string_view byte_level, std::string& out);

}  // namespace edgerazor::text
