#include "python_literal.h"

#include <cctype>
#include <cstdlib>
#include <stdexcept>

#include <cerrno>

#include "edgerazor/text/unicode.h"

namespace edgerazor::eval::detail {
namespace {

using text::jinja::Array;
using text::jinja::Object;
using text::jinja::Value;

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}
  Value parse() {
    Value v = value();
    skip();
    if (i_ != s_.size()) fail("unexpected text after the literal");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw std::invalid_argument("not a Python literal (" + why + " at character " + std::to_string(i_) + "): " + s_.substr(0, 80));
  }
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) { ++i_; return true; }
    return false;
  }
  Value value() {
    skip();
    if (i_ >= s_.size()) fail("end of text");
    const char c = s_[i_];
    if (c == '[' || c == '(') return sequence(c == '[' ? ']' : ')');
    if (c == '{') return dict();
    if (c == '\'' || c == '"') {
      std::string out = string_literal();
      for (skip(); i_ < s_.size() && (s_[i_] == '\'' || s_[i_] == '"'); skip()) out += string_literal();
      return Value(out);
    }
    if (c == '-' || c == '+') {
      ++i_;
      const Value v = value();
      if (!v.is_number()) fail("unary sign on a non-number");
      if (c == '+') return v;
      return v.kind() == Value::Kind::kInt ? Value(-v.as_int()) : Value(-v.as_float());
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') return number();
    for (const char* word : {"True", "False", "None"}) {
      if (s_.compare(i_, std::string(word).size(), word) == 0) {
        i_ += std::string(word).size();
        if (word[0] == 'N') return Value::none();
        return Value(word[0] == 'T');
      }
    }
    fail("unexpected character");
  }
  Value sequence(char close) {
    ++i_;
    Array items;
    while (!eat(close)) {
      items.push_back(value());
      if (!eat(',')) {
        if (!eat(close)) fail("expected ',' or closing bracket");
        if (close == ')' && items.size() == 1) return items[0];  // (x) is x, (x,) a tuple
        return Value(items);
      }
    }
    return Value(items);
  }
  Value dict() {
    ++i_;
    Object items;
    while (!eat('}')) {
      const Value key = value();
      if (!eat(':')) fail("expected ':'");
      items.emplace_back(key.is_string() ? key.as_string() : key.str(), value());
      if (!eat(',')) {
        if (!eat('}')) fail("expected ',' or '}'");
        break;
      }
    }
    return Value(items);
  }
  Value number() {
    const size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == '_' ||
                              ((s_[i_] == '-' || s_[i_] == '+') && (s_[i_ - 1] == 'e' || s_[i_ - 1] == 'E'))))
      ++i_;
    std::string t;
    for (char ch : s_.substr(start, i_ - start)) if (ch != '_') t += ch;
    char* end = nullptr;
    if (t.find_first_of(".eE") == std::string::npos || t.rfind("0x", 0) == 0) {
      errno = 0;
      const long long v = std::strtoll(t.c_str(), &end, t.rfind("0x", 0) == 0 ? 16 : 10);
      if (*end || errno) fail("bad integer '" + t + "'");
      return Value(static_cast<int64_t>(v));
    }
    const double v = std::strtod(t.c_str(), &end);
    if (*end) fail("bad number '" + t + "'");
    return Value(v);
  }
  std::string string_literal() {
    const char q = s_[i_];
    const bool triple = s_.compare(i_, 3, std::string(3, q)) == 0;
    i_ += triple ? 3 : 1;
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      if (triple ? s_.compare(i_, 3, std::string(3, q)) == 0 : s_[i_] == q) { i_ += triple ? 3 : 1; return out; }
      const char c = s_[i_++];
      if (c == '\n' && !triple) fail("newline in a string");
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) fail("unterminated string");
      const char e = s_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '0': out += '\0'; break;
        case '\n': break;
        case '\\': case '\'': case '"': out += e; break;
        case 'x': case 'u': case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i_ + n > s_.size()) fail("truncated escape");
          const std::string hex = s_.substr(i_, n);
          char* end = nullptr;
          const unsigned long cp = std::strtoul(hex.c_str(), &end, 16);
          if (*end || cp > 0x10FFFF) fail("bad escape \\" + std::string(1, e) + hex);
          text::append_utf8(out, static_cast<char32_t>(cp));
          i_ += n;
          break;
        }
        default: out += '\\'; out += e;  // Python keeps unknown escapes as written
      }
    }
  }

  const std::string& s_;
  size_t i_ = 0;
};

}  // namespace

Value python_literal_eval(const std::string& text) { return Parser(text).parse(); }

}  // namespace edgerazor::eval::detail
