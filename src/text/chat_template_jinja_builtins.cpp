// Jinja chat templates: the built-in filters (`x | name`), tests (`x is name`) and str/dict
// methods, with the Python comparison, membership and iteration rules that they and the
// renderer (chat_template_jinja_eval.cpp) share.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "chat_template_jinja_builtins.h"
#include "edgerazor/text/python_regex.h"
#include "edgerazor/text/unicode.h"

namespace edgerazor::text::jinja {

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

Value attribute(const Value& v, const std::string& name) {
  if (v.is_object()) return v.get(name);
  return Value();
}

// ---------------------------------------------------------------------------------------------
// Methods

namespace {

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

}  // namespace

Value arg(const std::vector<Value>& args, const Kwargs& kwargs, size_t index, const char* name) {
  if (index < args.size()) return args[index];
  for (const auto& kv : kwargs)
    if (kv.first == name) return kv.second;
  return Value();
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

// ---------------------------------------------------------------------------------------------
// Tests

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
  if (name == "divisibleby")  // (-1 is checked first: INT64_MIN % -1 overflows)
    return !args.empty() && args[0].as_int() != 0 && (args[0].as_int() == -1 || v.as_int() % args[0].as_int() == 0);
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

// ---------------------------------------------------------------------------------------------
// Filters

Value apply_filter(const std::string& name, const Value& v, const std::vector<Value>& args, const Kwargs& kwargs,
                   int line) {
  if (name == "length" || name == "count") {
    if (v.is_string()) return Value(static_cast<int64_t>(characters(v.as_string()).size()));
    if (v.is_array()) return Value(static_cast<int64_t>(v.as_array().size()));
    if (v.is_object()) return Value(static_cast<int64_t>(v.as_object().size()));
    fail(line, std::string("length of ") + kind_name(v.kind()));
  }
  if (name == "tojson") {
    const Value indent = arg(args, kwargs, 0, "indent");
    return Value(v.to_json(indent.is_number() ? static_cast<int>(indent.as_int()) : -1));
  }
  if (name == "trim") return Value(strip_chars(v.str(), arg(args, kwargs, 0, "chars"), true, true));
  if (name == "regex_replace") {  // lm-evaluation-harness's filter: re.sub(pattern, repl, value, count)
    const Value pattern = arg(args, kwargs, 0, "pattern"), repl = arg(args, kwargs, 1, "repl"), count = arg(args, kwargs, 2, "count");
    if (!pattern.is_string() || !repl.is_string()) fail(line, "regex_replace needs a pattern and a replacement string");
    try {
      return Value(PythonRegex(pattern.as_string()).sub(repl.as_string(), v.str(), count.is_number() ? static_cast<size_t>(std::max<int64_t>(0, count.as_int())) : 0));
    } catch (const std::invalid_argument& e) {
      fail(line, e.what());
    }
  }
  if (name == "upper" || name == "lower") return Value(change_case(v.str(), name == "upper"));
  if (name == "title") return Value(title_case(v.str()));
  if (name == "capitalize") {
    Value out;
    call_method(Value(v.str()), "capitalize", {}, {}, line, out);
    return out;
  }
  if (name == "string") return Value(v.str());
  if (name == "safe") return v;
  if (name == "int") {
    if (v.is_string()) {
      try {
        return Value(static_cast<int64_t>(std::stoll(v.as_string())));
      } catch (...) {
        return Value(int64_t{0});
      }
    }
    return Value(v.as_int());
  }
  if (name == "float") return Value(v.is_string() ? std::strtod(v.as_string().c_str(), nullptr) : v.as_float());
  if (name == "abs") return v.kind() == Value::Kind::kFloat ? Value(std::fabs(v.as_float())) : Value(v.as_int() == INT64_MIN ? v.as_float() * -1 : static_cast<int64_t>(std::llabs(v.as_int())));
  if (name == "default" || name == "d") {
    const bool boolean = arg(args, kwargs, 1, "boolean").truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return arg(args, kwargs, 0, "default_value").is_undefined() ? Value("") : arg(args, kwargs, 0, "default_value");
    return v;
  }
  if (name == "join") {
    const std::string sep = args.empty() ? "" : args[0].str();
    const Value attr = arg(args, kwargs, 1, "attribute");
    std::string out;
    const Array parts = iterate(v, line);
    for (size_t i = 0; i < parts.size(); ++i)
      out += (i ? sep : "") + (attr.is_undefined() ? parts[i] : attribute(parts[i], attr.str())).str();
    return Value(out);
  }
  if (name == "first" || name == "last") {
    const Array items = iterate(v, line);
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value(iterate(v, line));
  if (name == "reverse") {
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
  if (name == "items") return Value(items_of(v));
  if (name == "unique") {
    Array out;
    for (const Value& x : iterate(v, line))
      if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equal(x, y); })) out.push_back(x);
    return Value(out);
  }
  if (name == "replace") {
    Value out;
    call_method(Value(v.str()), "replace", args, kwargs, line, out);
    return out;
  }
  if (name == "map") {
    const Value attr = arg(args, kwargs, 99, "attribute");
    Array out;
    for (const Value& x : iterate(v, line)) {
      if (!attr.is_undefined()) {
        out.push_back(attribute(x, attr.str()));
      } else if (!args.empty()) {
        out.push_back(apply_filter(args[0].str(), x, std::vector<Value>(args.begin() + 1, args.end()), {}, line));
      }
    }
    return Value(out);
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    const bool by_attr = name == "selectattr" || name == "rejectattr";
    const bool keep_when = name == "select" || name == "selectattr";
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
  if (name == "indent") {
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
  fail(line, "unknown filter '" + name + "'");
}

}  // namespace edgerazor::text::jinja
