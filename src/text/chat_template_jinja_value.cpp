// Jinja template values: Python's str() and repr() forms, JSON in and out (tojson with
// transformers' defaults), truthiness and object members.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "chat_template_jinja_ast.h"
#include "chat_template_jinja_builtins.h"

namespace edgerazor::text::jinja {
namespace {

// Python's repr(float): the shortest digits that read back as f, written positionally when the
// decimal exponent is in [-4, 16) ("1000.0", "0.0001") and as "1e+16" / "1.5e-05" otherwise.
std::string format_float(double f) {
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (std::isnan(f)) return "nan";
  char buf[64];
  for (int precision = 0; precision <= 16; ++precision) {  // d.ddd...e±XX with the fewest digits
    std::snprintf(buf, sizeof(buf), "%.*e", precision, f);
    if (std::strtod(buf, nullptr) == f) break;
  }
  const std::string sci = buf;
  const size_t e = sci.find('e');
  const int exponent = std::atoi(sci.c_str() + e + 1);
  const bool negative = sci[0] == '-';
  std::string digits;
  for (size_t i = negative ? 1 : 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp[8];
    std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp;
  }
  if (exponent < 0) return out + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  const size_t point = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= point) return out + digits + std::string(point - digits.size(), '0') + ".0";
  return out + digits.substr(0, point) + "." + digits.substr(point);
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

Value Value::from_json(const nlohmann::ordered_json& json) { return from_nlohmann(json); }

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

}  // namespace edgerazor::text::jinja
