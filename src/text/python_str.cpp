#include "edgerazor/text/python_str.h"

#include <stdexcept>

#include "edgerazor/text/unicode.h"

#if defined(EDGERAZOR_HAVE_ICU)
#include <unicode/ucasemap.h>  // defines: ucasemap_open, ucasemap_utf8ToLower, ucasemap_utf8ToUpper
#endif

namespace edgerazor::text {

bool python_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string python_strip(std::string_view s, bool left, bool right) {
  size_t begin = 0, end = s.size();
  if (left) {
    for (size_t pos = 0; pos < s.size();) {
      if (!python_isspace(utf8_next(s, pos))) break;
      begin = pos;
    }
  }
  if (right) {
    // Walk forward, remembering where the last run of whitespace began.
    size_t run = std::string_view::npos;
    for (size_t pos = begin; pos < s.size();) {
      const size_t at = pos;
      if (python_isspace(utf8_next(s, pos))) {
        if (run == std::string_view::npos) run = at;
      } else {
        run = std::string_view::npos;
      }
    }
    if (run != std::string_view::npos) end = run;
  }
  return std::string(s.substr(begin, end - begin));
}

bool starts_with_python_space(std::string_view s) {
  size_t pos = 0;
  return !s.empty() && python_isspace(utf8_next(s, pos));
}

bool ends_with_python_space(std::string_view s) { return !s.empty() && python_strip(s, false, true).size() != s.size(); }

namespace {

std::string change_case(std::string_view in, bool upper) {
  const std::string s = is_valid_utf8(in) ? std::string(in) : sanitize_utf8(in);
#if defined(EDGERAZOR_HAVE_ICU)
  UErrorCode status = U_ZERO_ERROR;
  UCaseMap* map = ucasemap_open("", 0, &status);
  if (U_FAILURE(status)) throw std::runtime_error("ICU: cannot open a case map");
  std::string out(s.size() + 16, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    status = U_ZERO_ERROR;
    const auto fn = upper ? ucasemap_utf8ToUpper : ucasemap_utf8ToLower;
    const int32_t n = fn(map, out.data(), static_cast<int32_t>(out.size()), s.data(), static_cast<int32_t>(s.size()), &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
      out.resize(static_cast<size_t>(n));
      continue;
    }
    ucasemap_close(map);
    if (U_FAILURE(status)) throw std::runtime_error("ICU: case mapping failed");
    out.resize(static_cast<size_t>(n));
    return out;
  }
  ucasemap_close(map);
  throw std::runtime_error("ICU: case mapping buffer keeps overflowing");
#else
  std::string out = s;  // ASCII only without ICU
  for (char& c : out)
    if (upper ? (c >= 'a' && c <= 'z') : (c >= 'A' && c <= 'Z')) c = static_cast<char>(c ^ 0x20);
  return out;
#endif
}

}  // namespace

std::string python_lower(std::string_view s) { return change_case(s, false); }
std::string python_upper(std::string_view s) { return change_case(s, true); }

}  // namespace edgerazor::text
