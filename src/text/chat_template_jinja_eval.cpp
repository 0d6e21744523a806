// Jinja chat templates: values (Python semantics), filters, tests, methods, and the renderer.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "chat_template_jinja_ast.h"
#include "edgerazor/text/unicode.h"

namespace edgerazor::text::jinja {
namespace {

[[noreturn]] void fail(int line, const std::string& message) {
  throw TemplateError("chat template line " + std::to_string(line) + ": " + message);
}

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::kUndefined: return "undefined";
    case Value::Kind::kNone: return "none";
    case Value::Kind::kBool: return "boolean";
    case Value::Kind::kInt: return "integer";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "string";
    case Value::Kind::kArray: return "list";
    case Value::Kind::kObject: return "dict";
    case Value::Kind::kFunction: return "function";
  }
  return "?";
}

std::string format_float(double f) {
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (std::isnan(f)) return "nan";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {  // shortest repr that round-trips
    std::snprintf(buf, sizeof(buf), "%.*g", precision, f);
    if (std::strtod(buf, nullptr) == f) break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string python_repr(const Value& v) {
  if (v.is_string()) {
    const std::string& s = v.as_string();
    const char quote = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
    std::string out(1, quote);
    for (char c : s) {
      if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else if (c == quote) out += '\\', out += c;
      else out += c;
    }
    return out + quote;
  }
  return v.str();
}

void json_escape(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void to_json_impl(const Value& v, int indent, int depth, std::string& out) {
  const auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: out += "null"; break;
    case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; break;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); break;
    case Value::Kind::kFloat: out += format_float(v.as_float()); break;
    case Value::Kind::kString: json_escape(out, v.as_string()); break;
    case Value::Kind::kFunction: out += "null"; break;
    case Value::Kind::kArray: {
      const Array& a = v.as_array();
      if (a.empty()) {
        out += "[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < a.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        to_json_impl(a[i], indent, depth + 1, out);
      }
      newline(depth);
      out += ']';
      break;
    }
    case Value::Kind::kObject: {
      const Object& o = v.as_object();
      if (o.empty()) {
        out += "{}";
        break;
      }
      out += '{';
      for (size_t i = 0; i < o.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        json_escape(out, o[i].first);
        out += ": ";
        to_json_impl(o[i].second, indent, depth + 1, out);
      }
      newline(depth);
      out += '}';
      break;
    }
  }
}

Value from_nlohmann(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array a;
      for (const auto& x : j) a.push_back(from_nlohmann(x));
      return Value(std::move(a));
    }
    case nlohmann::ordered_json::value_t::object: {
      Object o;
      for (auto it = j.begin(); it != j.end(); ++it) o.emplace_back(it.key(), from_nlohmann(it.value()));
      return Value(std::move(o));
    }
    default: return Value();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Value

Value Value::from_json(const std::string& json_text) {
  try {
    return from_nlohmann(nlohmann::ordered_json::parse(json_text));
  } catch (const nlohmann::json::exception& e) {
    throw TemplateError(std::string("invalid JSON value: ") + e.what());
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool:
    case Kind::kInt: return int_ != 0;
    case Kind::kFloat: return float_ != 0;
    case Kind::kString: return !string_.empty();
    case Kind::kArray: return !array_->empty();
    case Kind::kObject: return !object_->empty();
    case Kind::kFunction: return true;
  }
  return false;
}

Value Value::get(const std::string& key) const {
  if (kind_ != Kind::kObject) return Value();
  for (const auto& kv : *object_)
    if (kv.first == key) return kv.second;
  return Value();
}

void Value::set(const std::string& key, Value value) const {
  for (auto& kv : *object_)
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  object_->emplace_back(key, std::move(value));
}

std::string Value::str() const {
  switch (kind_) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return int_ ? "True" : "False";
    case Kind::kInt: return std::to_string(int_);
    case Kind::kFloat: return format_float(float_);
    case Kind::kString: return string_;
    case Kind::kFunction: return "<function>";
    case Kind::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < array_->size(); ++i) out += (i ? ", " : "") + python_repr((*array_)[i]);
      return out + "]";
    }
    case Kind::kObject: {
      std::string out = "{";
      for (size_t i = 0; i < object_->size(); ++i)
        out += (i ? ", " : "") + python_repr(Value((*object_)[i].first)) + ": " + python_repr((*object_)[i].second);
      return out + "}";
    }
  }
  return "";
}

std::string Value::to_json(int indent) const {
  std::string out;
  to_json_impl(*this, indent, 0, out);
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Operations with Python semantics

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.as_float() == b.as_float();
  if ((a.kind() == Value::Kind::kBool) != (b.kind() == Value::Kind::kBool)) {
    if (a.kind() == Value::Kind::kBool && b.kind() == Value::Kind::kInt) return a.as_int() == b.as_int();
    if (b.kind() == Value::Kind::kBool && a.kind() == Value::Kind::kInt) return a.as_int() == b.as_int();
    return false;
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kBool: return a.as_bool() == b.as_bool();
    case Value::Kind::kString: return a.as_string() == b.as_string();
    case Value::Kind::kArray: {
      if (a.as_array().size() != b.as_array().size()) return false;
      for (size_t i = 0; i < a.as_array().size(); ++i)
        if (!equal(a.as_array()[i], b.as_array()[i])) return false;
      return true;
    }
    case Value::Kind::kObject: {
      if (a.as_object().size() != b.as_object().size()) return false;
      for (const auto& kv : a.as_object())
        if (!equal(kv.second, b.get(kv.first))) return false;
      return true;
    }
    default: return false;
  }
}

int compare(const Value& a, const Value& b, int line) {
  if (a.is_number() && b.is_number()) return a.as_float() < b.as_float() ? -1 : a.as_float() > b.as_float() ? 1 : 0;
  if (a.is_string() && b.is_string()) return a.as_string().compare(b.as_string()) < 0 ? -1 : a.as_string() == b.as_string() ? 0 : 1;
  fail(line, std::string("cannot compare ") + kind_name(a.kind()) + " with " + kind_name(b.kind()));
}

// Code points of a UTF-8 string (Python indexes and slices strings by character).
std::vector<std::string> characters(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    utf8_next(s, pos);
    out.push_back(s.substr(start, pos - start));
  }
  return out;
}

bool contains(const Value& container, const Value& item, int line) {
  if (container.is_string()) {
    if (!item.is_string()) fail(line, "'in <string>' requires a string on the left");
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_array()) {
    for (const Value& x : container.as_array())
      if (equal(x, item)) return true;
    return false;
  }
  if (container.is_object()) {
    if (!item.is_string()) return false;
    for (const auto& kv : container.as_object())
      if (kv.first == item.as_string()) return true;
    return false;
  }
  if (container.is_undefined() || container.is_none()) return false;
  fail(line, std::string("'in' needs a string, list or dict, got ") + kind_name(container.kind()));
}

Value arithmetic(const std::string& op, const Value& a, const Value& b, int line) {
  if (op == "~") return Value(a.str() + b.str());
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
    if (a.is_array() && b.is_array()) {
      Array out = a.as_array();
      out.insert(out.end(), b.as_array().begin(), b.as_array().end());
      return Value(std::move(out));
    }
  }
  if (op == "*" && a.is_string() && b.kind() == Value::Kind::kInt) {
    std::string out;
    for (int64_t i = 0; i < b.as_int(); ++i) out += a.as_string();
    return Value(std::move(out));
  }
  const auto numeric = [](const Value& v) { return v.is_number() || v.kind() == Value::Kind::kBool; };
  if (!numeric(a) || !numeric(b))
    fail(line, "unsupported operand types for " + op + ": " + kind_name(a.kind()) + " and " + kind_name(b.kind()));
  const bool ints = a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat;
  const int64_t x = a.as_int(), y = b.as_int();
  const double fx = a.as_float(), fy = b.as_float();
  if (op == "+") return ints ? Value(x + y) : Value(fx + fy);
  if (op == "-") return ints ? Value(x - y) : Value(fx - fy);
  if (op == "*") return ints ? Value(x * y) : Value(fx * fy);
  if (op == "**") return ints && y >= 0 ? Value(static_cast<int64_t>(std::llround(std::pow(fx, fy)))) : Value(std::pow(fx, fy));
  if (fy == 0) fail(line, "division by zero");
  if (op == "/") return Value(fx / fy);
  if (op == "//") {
    if (ints) {
      int64_t q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return Value(q);
    }
    return Value(std::floor(fx / fy));
  }
  if (op == "%") {
    if (ints) {
      int64_t r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      return Value(r);
    }
    return Value(fx - std::floor(fx / fy) * fy);
  }
  fail(line, "unknown operator " + op);
}

int64_t normalize_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

// Python slice over n elements: the selected indices.
std::vector<int64_t> slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step_value, int line) {
  const int64_t step = step_value.is_number() ? step_value.as_int() : 1;
  if (step == 0) fail(line, "slice step cannot be zero");
  const auto clamp = [&](const Value& v, int64_t fallback) {
    if (!v.is_number()) return fallback;
    int64_t i = v.as_int();
    if (i < 0) i += n;
    if (step > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  std::vector<int64_t> out;
  if (step > 0) {
    for (int64_t i = clamp(start, 0), e = clamp(stop, n); i < e; i += step) out.push_back(i);
  } else {
    for (int64_t i = clamp(start, n - 1), e = clamp(stop, -1); i > e; i += step) out.push_back(i);
  }
  return out;
}

bool is_py_space(const std::string& c) {
  return c.size() == 1 ? (c[0] == ' ' || (c[0] >= '\t' && c[0] <= '\r') || (c[0] >= 0x1c && c[0] <= 0x1f))
                       : (c == "\xc2\x85" || c == "\xc2\xa0" || c == "\xe3\x80\x80" || c == "\xe2\x80\xa8" ||
                          c == "\xe2\x80\xa9");
}

std::string strip_chars(const std::string& s, const Value& chars, bool left, bool right) {
  const std::vector<std::string> cs = characters(s);
  const std::vector<std::string> set = chars.is_string() ? characters(chars.as_string()) : std::vector<std::string>{};
  const auto strip = [&](const std::string& c) {
    return chars.is_string() ? std::find(set.begin(), set.end(), c) != set.end() : is_py_space(c);
  };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strip(cs[b])) ++b;
  if (right)
    while (e > b && strip(cs[e - 1])) --e;
  std::string out;
  for (size_t i = b; i < e; ++i) out += cs[i];
  return out;
}

Array split(const std::string& s, const Value& sep, int64_t maxsplit) {
  Array out;
  if (!sep.is_string()) {  // runs of whitespace, no empty strings
    const std::vector<std::string> cs = characters(s);
    std::string current;
    bool in_word = false;
    int64_t splits = 0;
    for (size_t i = 0; i < cs.size(); ++i) {
      if (is_py_space(cs[i]) && (maxsplit < 0 || splits < maxsplit || !in_word)) {
        if (in_word) out.push_back(Value(current)), current.clear(), in_word = false, ++splits;
      } else {
        if (!in_word && maxsplit >= 0 && splits >= maxsplit) {  // rest, right-stripped
          std::string rest;
          for (size_t k = i; k < cs.size(); ++k) rest += cs[k];
          out.push_back(Value(strip_chars(rest, Value(), false, true)));
          return out;
        }
        current += cs[i], in_word = true;
      }
    }
    if (in_word) out.push_back(Value(current));
    return out;
  }
  const std::string& d = sep.as_string();
  if (d.empty()) throw TemplateError("split: empty separator");
  size_t start = 0;
  int64_t splits = 0;
  while (maxsplit < 0 || splits < maxsplit) {
    const size_t at = s.find(d, start);
    if (at == std::string::npos) break;
    out.push_back(Value(s.substr(start, at - start)));
    start = at + d.size();
    ++splits;
  }
  out.push_back(Value(s.substr(start)));
  return out;
}

std::string title_case(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    const bool alpha = std::isalpha(static_cast<unsigned char>(c));
    c = static_cast<char>(alpha ? (start ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c))) : c);
    start = !alpha;
  }
  return out;
}

std::string change_case(std::string s, bool upper) {
  for (char& c : s) c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Value arg(const std::vector<Value>& args, const Kwargs& kwargs, size_t index, const char* name) {
  if (index < args.size()) return args[index];
  for (const auto& kv : kwargs)
    if (kv.first == name) return kv.second;
  return Value();
}

Array iterate(const Value& v, int line) {
  if (v.is_array()) return v.as_array();
  if (v.is_object()) {
    Array keys;
    for (const auto& kv : v.as_object()) keys.push_back(Value(kv.first));
    return keys;
  }
  if (v.is_string()) {
    Array out;
    for (auto& c : characters(v.as_string())) out.push_back(Value(c));
    return out;
  }
  if (v.is_undefined() || v.is_none()) return {};
  fail(line, std::string("cannot iterate over ") + kind_name(v.kind()));
}

Array items_of(const Value& v) {
  Array out;
  if (v.is_object())
    for (const auto& kv : v.as_object()) out.push_back(Value(Array{Value(kv.first), kv.second}));
  return out;
}

// Methods of str and dict that chat templates call.
bool call_method(const Value& self, const std::string& name, const std::vector<Value>& args,
                 const Kwargs& kwargs, int line, Value& result) {
  if (self.is_string()) {
    const std::string& s = self.as_string();
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      result = Value(strip_chars(s, arg(args, kwargs, 0, "chars"), name != "rstrip", name != "lstrip"));
    } else if (name == "split") {
      const Value maxsplit = arg(args, kwargs, 1, "maxsplit");
      result = Value(split(s, arg(args, kwargs, 0, "sep"), maxsplit.is_number() ? maxsplit.as_int() : -1));
    } else if (name == "startswith" || name == "endswith") {
      const Value what = arg(args, kwargs, 0, "prefix");
      std::vector<std::string> options;
      if (what.is_string()) options.push_back(what.as_string());
      else if (what.is_array()) for (const Value& x : what.as_array()) options.push_back(x.str());
      else fail(line, name + " needs a string");
      bool hit = false;
      for (const std::string& o : options)
        hit = hit || (s.size() >= o.size() && (name == "startswith" ? s.compare(0, o.size(), o) == 0
                                                                    : s.compare(s.size() - o.size(), o.size(), o) == 0));
      result = Value(hit);
    } else if (name == "upper" || name == "lower") {
      result = Value(change_case(s, name == "upper"));
    } else if (name == "title") {
      result = Value(title_case(s));
    } else if (name == "capitalize") {
      std::string out = change_case(s, false);
      if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
      result = Value(out);
    } else if (name == "replace") {
      const std::string from = arg(args, kwargs, 0, "old").str(), to = arg(args, kwargs, 1, "new").str();
      const Value count = arg(args, kwargs, 2, "count");
      int64_t left = count.is_number() ? count.as_int() : -1;
      std::string out;
      size_t start = 0;
      if (from.empty()) {
        result = Value(s);
        return true;
      }
      for (size_t at; left != 0 && (at = s.find(from, start)) != std::string::npos; start = at + from.size(), --left)
        out += s.substr(start, at - start) + to;
      result = Value(out + s.substr(start));
    } else if (name == "find" || name == "count") {
      const std::string needle = arg(args, kwargs, 0, "sub").str();
      if (name == "find") {
        const size_t at = s.find(needle);
        result = Value(at == std::string::npos ? int64_t{-1} : static_cast<int64_t>(characters(s.substr(0, at)).size()));
      } else {
        int64_t n = 0;
        for (size_t at = s.find(needle); !needle.empty() && at != std::string::npos; at = s.find(needle, at + needle.size())) ++n;
        result = Value(n);
      }
    } else if (name == "join") {
      std::string out;
      const Array parts = iterate(arg(args, kwargs, 0, "iterable"), line);
      for (size_t i = 0; i < parts.size(); ++i) out += (i ? s : "") + parts[i].str();
      result = Value(out);
    } else if (name == "splitlines") {
      Array out = split(s, Value("\n"), -1);
      if (!out.empty() && out.back().as_string().empty()) out.pop_back();
      result = Value(out);
    } else if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isupper" || name == "islower") {
      bool ok = !s.empty();
      for (unsigned char c : s) {
        if (name == "isdigit") ok = ok && std::isdigit(c);
        if (name == "isalpha") ok = ok && std::isalpha(c);
        if (name == "isspace") ok = ok && std::isspace(c);
        if (name == "isupper") ok = ok && !std::islower(c);
        if (name == "islower") ok = ok && !std::isupper(c);
      }
      result = Value(ok);
    } else {
      return false;
    }
    return true;
  }
  if (self.is_object()) {
    if (name == "items") {
      result = Value(items_of(self));
    } else if (name == "keys" || name == "values") {
      Array out;
      for (const auto& kv : self.as_object()) out.push_back(name == "keys" ? Value(kv.first) : kv.second);
      result = Value(out);
    } else if (name == "get") {
      const Value v = self.get(arg(args, kwargs, 0, "key").str());
      result = v.is_undefined() ? (args.size() > 1 ? args[1] : Value::none()) : v;
    } else {
      return false;
    }
    return true;
  }
  return false;
}

bool run_test(const std::string& name, const Value& v, const std::vector<Value>& args, int line) {
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind() == Value::Kind::kBool;
  if (name == "true") return v.kind() == Value::Kind::kBool && v.as_bool();
  if (name == "false") return v.kind() == Value::Kind::kBool && !v.as_bool();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind() == Value::Kind::kInt;
  if (name == "float") return v.kind() == Value::Kind::kFloat;
  if (name == "mapping") return v.is_object();
  if (name == "sequence") return v.is_array() || v.is_string() || v.is_object();
  if (name == "iterable") return v.is_array() || v.is_string() || v.is_object();
  if (name == "callable") return v.kind() == Value::Kind::kFunction;
  if (name == "even" || name == "odd") {
    if (v.kind() != Value::Kind::kInt) fail(line, "'" + name + "' test needs an integer");
    return (v.as_int() % 2 == 0) == (name == "even");
  }
  if (name == "divisibleby") return !args.empty() && args[0].as_int() != 0 && v.as_int() % args[0].as_int() == 0;
  if (name == "lower") return v.is_string() && change_case(v.as_string(), false) == v.as_string();
  if (name == "upper") return v.is_string() && change_case(v.as_string(), true) == v.as_string();
  if (args.empty()) fail(line, "unknown test '" + name + "'");
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return equal(v, args[0]);
  if (name == "ne" || name == "!=") return !equal(v, args[0]);
  if (name == "lt" || name == "<" || name == "lessthan") return compare(v, args[0], line) < 0;
  if (name == "gt" || name == ">" || name == "greaterthan") return compare(v, args[0], line) > 0;
  if (name == "le" || name == "<=") return compare(v, args[0], line) <= 0;
  if (name == "ge" || name == ">=") return compare(v, args[0], line) >= 0;
  if (name == "in") return contains(args[0], v, line);
  fail(line, "unknown test '" + name + "'");
}

Value attribute(const Value& v, const std::string& name) {
  if (v.is_object()) return v.get(name);
  return Value();
}

// ---------------------------------------------------------------------------------------------
// Renderer

struct LoopControl {
  enum class Kind { kNone, kBreak, kContinue } kind = Kind::kNone;
};

class Renderer {
 public:
  Renderer(const Value& context, RenderResult& result) : result_(result) {
    frames_.emplace_back();
    install_globals();
    if (context.is_object())
      for (const auto& kv : context.as_object()) frames_.back()[kv.first] = kv.second;
  }

  void run(const Body& body) {
    LoopControl control;
    render(body, control);
  }

 private:
  using Frame = std::unordered_map<std::string, Value>;

  void install_globals() {
    Frame& g = frames_.back();
    g["raise_exception"] = Value(Function([](const std::vector<Value>& args, const Kwargs&) -> Value {
      throw TemplateError("raise_exception: " + (args.empty() ? std::string() : args[0].str()));
    }));
    g["range"] = Value(Function([](const std::vector<Value>& args, const Kwargs&) -> Value {
      int64_t start = 0, stop = 0, step = 1;
      if (args.size() == 1) stop = args[0].as_int();
      else if (args.size() >= 2) start = args[0].as_int(), stop = args[1].as_int();
      if (args.size() >= 3) step = args[2].as_int();
      if (step == 0) throw TemplateError("range: step cannot be zero");
      Array out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(Value(i));
      return Value(std::move(out));
    }));
    const Function make_object = [](const std::vector<Value>&, const Kwargs& kwargs) -> Value {
      Object o(kwargs.begin(), kwargs.end());
      return Value(std::move(o));
    };
    g["namespace"] = Value(make_object);
    g["dict"] = Value(make_object);
    g["strftime_now"] = Value(Function([](const std::vector<Value>& args, const Kwargs&) -> Value {
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      const size_t n = std::strftime(buf, sizeof(buf), args.empty() ? "%Y-%m-%d" : args[0].str().c_str(), &tm);
      return Value(std::string(buf, n));
    }));
  }

  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value();
  }

  void render(const Body& body, LoopControl& control) {
    for (const Node& node : body) {
      if (control.kind != LoopControl::Kind::kNone) return;
      switch (node.kind) {
        case Node::Kind::kText: result_.text += node.text; break;
        case Node::Kind::kOutput: result_.text += eval(*node.expr).str(); break;
        case Node::Kind::kIf: {
          bool taken = false;
          for (const auto& branch : node.branches) {
            if (eval(*branch.first).truthy()) {
              render(branch.second, control);
              taken = true;
              break;
            }
          }
          if (!taken) render(node.else_body, control);
          break;
        }
        case Node::Kind::kFor: render_for(node, control); break;
        case Node::Kind::kSet: assign(node, eval(*node.expr)); break;
        case Node::Kind::kSetBlock: {
          const size_t mark = result_.text.size();
          render(node.body, control);
          std::string captured = result_.text.substr(mark);
          result_.text.resize(mark);
          assign(node, Value(std::move(captured)));
          break;
        }
        case Node::Kind::kMacro: define_macro(node); break;
        case Node::Kind::kBreak: control.kind = LoopControl::Kind::kBreak; return;
        case Node::Kind::kContinue: control.kind = LoopControl::Kind::kContinue; return;
        case Node::Kind::kGeneration: {
          const size_t begin = result_.text.size();
          render(node.body, control);
          result_.generation_spans.emplace_back(begin, result_.text.size());
          break;
        }
      }
    }
  }

  void assign(const Node& node, Value value) {
    if (node.targets.size() == 1) {
      frames_.back()[node.targets[0]] = std::move(value);
      return;
    }
    const Value target = lookup(node.targets[0]);
    if (!target.is_object()) fail(node.line, "cannot set attribute of '" + node.targets[0] + "' (not a namespace)");
    target.set(node.targets[1], std::move(value));
  }

  void render_for(const Node& node, LoopControl& outer) {
    const Value iterable = eval(*node.expr);
    Array items = iterable.is_object() && node.targets.size() == 2 ? items_of(iterable) : iterate(iterable, node.line);
    const auto bind = [&](Frame& frame, const Value& item) {
      if (node.targets.size() == 1) {
        frame[node.targets[0]] = item;
        return;
      }
      if (!item.is_array() || item.as_array().size() != node.targets.size())
        fail(node.line, "cannot unpack loop item into " + std::to_string(node.targets.size()) + " names");
      for (size_t k = 0; k < node.targets.size(); ++k) frame[node.targets[k]] = item.as_array()[k];
    };
    if (node.condition) {  // `for x in xs if cond`: filter before numbering, as Jinja does
      Array kept;
      for (const Value& item : items) {
        frames_.emplace_back();
        bind(frames_.back(), item);
        const bool keep = eval(*node.condition).truthy();
        frames_.pop_back();
        if (keep) kept.push_back(item);
      }
      items.swap(kept);
    }
    if (items.empty()) {
      render(node.else_body, outer);
      return;
    }
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      frames_.emplace_back();  // one scope per iteration, like @huggingface/jinja
      Frame& frame = frames_.back();
      bind(frame, items[static_cast<size_t>(i)]);
      Object loop{{"index", Value(i + 1)},
                  {"index0", Value(i)},
                  {"revindex", Value(n - i)},
                  {"revindex0", Value(n - i - 1)},
                  {"first", Value(i == 0)},
                  {"last", Value(i == n - 1)},
                  {"length", Value(n)},
                  {"previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value()},
                  {"nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value()}};
      frame["loop"] = Value(std::move(loop));
      LoopControl control;
      render(node.body, control);
      frames_.pop_back();
      if (control.kind == LoopControl::Kind::kBreak) break;
    }
  }

  void define_macro(const Node& node) {
    const Node* macro = &node;
    frames_.back()[node.targets[0]] = Value(Function([this, macro](const std::vector<Value>& args, const Kwargs& kwargs) {
      Frame frame;
      for (size_t k = 0; k < macro->params.size(); ++k) {
        Value v = arg(args, kwargs, k, macro->params[k].first.c_str());
        if (v.is_undefined() && macro->params[k].second) v = eval(*macro->params[k].second);
        frame[macro->params[k].first] = v;
      }
      frames_.push_back(std::move(frame));
      const size_t mark = result_.text.size();
      LoopControl control;
      render(macro->body, control);
      std::string out = result_.text.substr(mark);
      result_.text.resize(mark);
      frames_.pop_back();
      return Value(std::move(out));
    }));
  }

  Value call_function(const Value& callee, const Expr& e, std::vector<Value> args, Kwargs kwargs) {
    if (callee.kind() != Value::Kind::kFunction) fail(e.line, "'" + (e.children[0]->name) + "' is not callable");
    return callee.as_function()(args, kwargs);
  }

  Value apply_filter(const Expr& e, const Value& v, const std::vector<Value>& args, const Kwargs& kwargs) {
    const std::string& f = e.name;
    const int line = e.line;
    if (f == "length" || f == "count") {
      if (v.is_string()) return Value(static_cast<int64_t>(characters(v.as_string()).size()));
      if (v.is_array()) return Value(static_cast<int64_t>(v.as_array().size()));
      if (v.is_object()) return Value(static_cast<int64_t>(v.as_object().size()));
      fail(line, std::string("length of ") + kind_name(v.kind()));
    }
    if (f == "tojson") {
      const Value indent = arg(args, kwargs, 0, "indent");
      return Value(v.to_json(indent.is_number() ? static_cast<int>(indent.as_int()) : -1));
    }
    if (f == "trim") return Value(strip_chars(v.str(), arg(args, kwargs, 0, "chars"), true, true));
    if (f == "upper" || f == "lower") return Value(change_case(v.str(), f == "upper"));
    if (f == "title") return Value(title_case(v.str()));
    if (f == "capitalize") {
      Value out;
      call_method(Value(v.str()), "capitalize", {}, {}, line, out);
      return out;
    }
    if (f == "string") return Value(v.str());
    if (f == "safe") return v;
    if (f == "int") {
      if (v.is_string()) {
        try {
          return Value(static_cast<int64_t>(std::stoll(v.as_string())));
        } catch (...) {
          return Value(int64_t{0});
        }
      }
      return Value(v.as_int());
    }
    if (f == "float") return Value(v.is_string() ? std::strtod(v.as_string().c_str(), nullptr) : v.as_float());
    if (f == "abs") return v.kind() == Value::Kind::kFloat ? Value(std::fabs(v.as_float())) : Value(static_cast<int64_t>(std::llabs(v.as_int())));
    if (f == "default" || f == "d") {
      const bool boolean = arg(args, kwargs, 1, "boolean").truthy();
      if (v.is_undefined() || (boolean && !v.truthy())) return arg(args, kwargs, 0, "default_value").is_undefined() ? Value("") : arg(args, kwargs, 0, "default_value");
      return v;
    }
    if (f == "join") {
      const std::string sep = args.empty() ? "" : args[0].str();
      const Value attr = arg(args, kwargs, 1, "attribute");
      std::string out;
      const Array parts = iterate(v, line);
      for (size_t i = 0; i < parts.size(); ++i)
        out += (i ? sep : "") + (attr.is_undefined() ? parts[i] : attribute(parts[i], attr.str())).str();
      return Value(out);
    }
    if (f == "first" || f == "last") {
      const Array items = iterate(v, line);
      if (items.empty()) return Value();
      return f == "first" ? items.front() : items.back();
    }
    if (f == "list") return Value(iterate(v, line));
    if (f == "reverse") {
      if (v.is_string()) {
        std::vector<std::string> cs = characters(v.as_string());
        std::string out;
        for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
        return Value(out);
      }
      Array items = iterate(v, line);
      std::reverse(items.begin(), items.end());
      return Value(items);
    }
    if (f == "items") return Value(items_of(v));
    if (f == "unique") {
      Array out;
      for (const Value& x : iterate(v, line))
        if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equal(x, y); })) out.push_back(x);
      return Value(out);
    }
    if (f == "replace") {
      Value out;
      call_method(Value(v.str()), "replace", args, kwargs, line, out);
      return out;
    }
    if (f == "map") {
      const Value attr = arg(args, kwargs, 99, "attribute");
      Array out;
      for (const Value& x : iterate(v, line)) {
        if (!attr.is_undefined()) {
          out.push_back(attribute(x, attr.str()));
        } else if (!args.empty()) {
          Expr inner;
          inner.name = args[0].str(), inner.line = line;
          out.push_back(apply_filter(inner, x, std::vector<Value>(args.begin() + 1, args.end()), {}));
        }
      }
      return Value(out);
    }
    if (f == "select" || f == "reject" || f == "selectattr" || f == "rejectattr") {
      const bool by_attr = f == "selectattr" || f == "rejectattr";
      const bool keep_when = f == "select" || f == "selectattr";
      Array out;
      for (const Value& x : iterate(v, line)) {
        const size_t k = by_attr ? 1 : 0;
        const Value subject = by_attr ? attribute(x, args.empty() ? "" : args[0].str()) : x;
        const bool passed = args.size() <= k ? subject.truthy()
                                             : run_test(args[k].str(), subject, std::vector<Value>(args.begin() + static_cast<std::ptrdiff_t>(k) + 1, args.end()), line);
        if (passed == keep_when) out.push_back(x);
      }
      return Value(out);
    }
    if (f == "indent") {
      const int64_t width = args.empty() ? 4 : args[0].as_int();
      const bool first = arg(args, kwargs, 1, "first").truthy();
      const std::string pad(static_cast<size_t>(std::max<int64_t>(0, width)), ' ');
      std::string out, s = v.str();
      bool at_line_start = first;
      for (char c : s) {
        if (at_line_start && c != '\n') out += pad;
        at_line_start = false;
        out += c;
        if (c == '\n') at_line_start = true;
      }
      return Value(out);
    }
    fail(line, "unknown filter '" + f + "'");
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.literal;
      case Expr::Kind::kName: return lookup(e.name);
      case Expr::Kind::kAttr: return attribute(eval(*e.children[0]), e.name);
      case Expr::Kind::kIndex: {
        const Value obj = eval(*e.children[0]);
        const Value key = eval(*e.children[1]);
        if (obj.is_array() && key.is_number()) {
          const int64_t n = static_cast<int64_t>(obj.as_array().size()), i = normalize_index(key.as_int(), n);
          return i >= 0 && i < n ? obj.as_array()[static_cast<size_t>(i)] : Value();
        }
        if (obj.is_string() && key.is_number()) {
          const std::vector<std::string> cs = characters(obj.as_string());
          const int64_t n = static_cast<int64_t>(cs.size()), i = normalize_index(key.as_int(), n);
          return i >= 0 && i < n ? Value(cs[static_cast<size_t>(i)]) : Value();
        }
        if (obj.is_object() && key.is_string()) return obj.get(key.as_string());
        return Value();
      }
      case Expr::Kind::kSlice: {
        const Value obj = eval(*e.children[0]);
        const auto part = [&](size_t k) { return e.children[k] ? eval(*e.children[k]) : Value(); };
        const Value start = part(1), stop = part(2), step = part(3);
        if (obj.is_string()) {
          const std::vector<std::string> cs = characters(obj.as_string());
          std::string out;
          for (int64_t i : slice_indices(static_cast<int64_t>(cs.size()), start, stop, step, e.line)) out += cs[static_cast<size_t>(i)];
          return Value(out);
        }
        if (obj.is_array()) {
          Array out;
          for (int64_t i : slice_indices(static_cast<int64_t>(obj.as_array().size()), start, stop, step, e.line))
            out.push_back(obj.as_array()[static_cast<size_t>(i)]);
          return Value(out);
        }
        fail(e.line, std::string("cannot slice ") + kind_name(obj.kind()));
      }
      case Expr::Kind::kCall: {
        std::vector<Value> args;
        Kwargs kwargs;
        for (size_t k = 1; k < e.children.size(); ++k) args.push_back(eval(*e.children[k]));
        for (const auto& kv : e.kwargs) kwargs.emplace_back(kv.first, eval(*kv.second));
        const Expr& callee = *e.children[0];
        if (callee.kind == Expr::Kind::kAttr) {
          const Value self = eval(*callee.children[0]);
          Value result;
          if (call_method(self, callee.name, args, kwargs, e.line, result)) return result;
          const Value member = attribute(self, callee.name);
          if (member.kind() == Value::Kind::kFunction) return member.as_function()(args, kwargs);
          fail(e.line, std::string("no method '") + callee.name + "' on " + kind_name(self.kind()));
        }
        const Value fn = eval(callee);
        if (fn.kind() != Value::Kind::kFunction) fail(e.line, "'" + callee.name + "' is not a function");
        return fn.as_function()(args, kwargs);
      }
      case Expr::Kind::kFilter: {
        const Value v = eval(*e.children[0]);
        std::vector<Value> args;
        Kwargs kwargs;
        for (size_t k = 1; k < e.children.size(); ++k) args.push_back(eval(*e.children[k]));
        for (const auto& kv : e.kwargs) kwargs.emplace_back(kv.first, eval(*kv.second));
        return apply_filter(e, v, args, kwargs);
      }
      case Expr::Kind::kTest: {
        const Value v = eval(*e.children[0]);
        std::vector<Value> args;
        for (size_t k = 1; k < e.children.size(); ++k) args.push_back(eval(*e.children[k]));
        return Value(run_test(e.name, v, args, e.line) != e.negated);
      }
      case Expr::Kind::kUnary: {
        const Value v = eval(*e.children[0]);
        if (!v.is_number()) fail(e.line, std::string("bad operand for unary ") + e.name + ": " + kind_name(v.kind()));
        if (e.name == "+") return v;
        return v.kind() == Value::Kind::kFloat ? Value(-v.as_float()) : Value(-v.as_int());
      }
      case Expr::Kind::kNot: return Value(!eval(*e.children[0]).truthy());
      case Expr::Kind::kAnd: {
        Value left = eval(*e.children[0]);
        return left.truthy() ? eval(*e.children[1]) : left;
      }
      case Expr::Kind::kOr: {
        Value left = eval(*e.children[0]);
        return left.truthy() ? left : eval(*e.children[1]);
      }
      case Expr::Kind::kTernary: {
        if (eval(*e.children[0]).truthy()) return eval(*e.children[1]);
        return e.children[2] ? eval(*e.children[2]) : Value();
      }
      case Expr::Kind::kBinary: {
        const Value a = eval(*e.children[0]), b = eval(*e.children[1]);
        const std::string& op = e.name;
        if (op == "==") return Value(equal(a, b));
        if (op == "!=") return Value(!equal(a, b));
        if (op == "<") return Value(compare(a, b, e.line) < 0);
        if (op == ">") return Value(compare(a, b, e.line) > 0);
        if (op == "<=") return Value(compare(a, b, e.line) <= 0);
        if (op == ">=") return Value(compare(a, b, e.line) >= 0);
        if (op == "in") return Value(contains(b, a, e.line));
        if (op == "not in") return Value(!contains(b, a, e.line));
        return arithmetic(op, a, b, e.line);
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        Array out;
        for (const auto& c : e.children) out.push_back(eval(*c));
        return Value(out);
      }
      case Expr::Kind::kDict: {
        Object out;
        for (const auto& kv : e.pairs) out.emplace_back(eval(*kv.first).str(), eval(*kv.second));
        return Value(out);
      }
    }
    fail(e.line, "bad expression");
  }

  RenderResult& result_;
  std::vector<Frame> frames_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Template

Template::Template(const std::string& source) : program_(parse_template(source)) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

RenderResult Template::render(const Value& context) const {
  RenderResult result;
  Renderer(context, result).run(program_->body);
  return result;
}

bool Template::has_generation_blocks() const { return program_->has_generation; }

}  // namespace edgerazor::text::jinja
