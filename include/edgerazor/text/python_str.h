// Python str whitespace semantics on UTF-8 text (str.isspace, str.strip/lstrip/rstrip with no
// argument), for code that must split text exactly as a Python reference does (lm-eval moves a
// context's trailing whitespace into the continuation; its filters strip responses).
#pragma once

#include <string>
#include <string_view>

namespace edgerazor::text {

// str.isspace() of one code point: ASCII \t\n\v\f\r, \x1c-\x1f, space, U+0085, U+00A0, U+1680,
// U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
bool python_isspace(char32_t cp);
std::string python_strip(std::string_view s, bool left = true, bool right = true);
bool starts_with_python_space(std::string_view s);
bool ends_with_python_space(std::string_view s);
// str.lower() / str.upper(): full Unicode case mapping (ß -> SS, final sigma), through ICU's
// root-locale UTF-8 case mapping; invalid UTF-8 is replaced by U+FFFD first.
std::string python_lower(std::string_view s);
std::string python_upper(std::string_view s);

}  // namespace edgerazor::text
