#include "edgerazor/text/python_str.h"

#include "edgerazor/text/unicode.h"

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

}  // namespace edgerazor::text
