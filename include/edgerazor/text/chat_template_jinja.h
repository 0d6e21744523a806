// Implements: a small Jinja interpreter for Hugging Face chat templates (the subset that model
// chat templates use), rendering the same text as transformers' apply_chat_template and
// @huggingface/jinja.
//
// Environment as in transformers: trim_blocks and lstrip_blocks on, one trailing newline of the
// template dropped, loop controls (break/continue), the `generation` block (its output ranges
// are reported), and the globals raise_exception, strftime_now, range, namespace, dict.
// Supported: {{ }}, {% if/elif/else %}, {% for a[, b] in x [if c] %} with loop.* and else,
// {% set %} (names, namespace attributes, blocks), {% macro %}, comments, whitespace control;
// expressions with Python semantics for literals, lists, dicts, attribute/index/slice access,
// calls, string/dict methods, filters, tests, arithmetic, comparisons, in, and/or/not, ~ and
// conditional expressions. Anything else is a TemplateError naming the template line.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace edgerazor::text::jinja {

class TemplateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // insertion order, like Python dicts
using Kwargs = std::vector<std::pair<std::string, Value>>;
using Function = std::function<Value(const std::vector<Value>& args, const Kwargs& kwargs)>;

// A Python-like value. Arrays and objects are shared (reference semantics, as in Python), which
// is what namespace attribute assignment relies on.
class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject, kFunction };

  Value() = default;  // undefined
  Value(bool b) : kind_(Kind::kBool), int_(b) {}
  Value(int i) : kind_(Kind::kInt), int_(i) {}
  Value(int64_t i) : kind_(Kind::kInt), int_(i) {}
  Value(double f) : kind_(Kind::kFloat), float_(f) {}
  Value(const char* s) : kind_(Kind::kString), string_(s) {}
  Value(std::string s) : kind_(Kind::kString), string_(std::move(s)) {}
  Value(Array a) : kind_(Kind::kArray), array_(std::make_shared<Array>(std::move(a))) {}
  Value(Object o) : kind_(Kind::kObject), object_(std::make_shared<Object>(std::move(o))) {}
  Value(Function f) : kind_(Kind::kFunction), function_(std::make_shared<Function>(std::move(f))) {}
  static Value none() {
    Value v;
    v.kind_ = Kind::kNone;
    return v;
  }
  // JSON text -> Value (objects keep key order). Throws TemplateError on bad JSON.
  static Value from_json(const std::string& json_text);
  // The same from parsed JSON (objects keep key order).
  static Value from_json(const nlohmann::ordered_json& json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool truthy() const;

  bool as_bool() const { return int_ != 0; }
  // A float is truncated as Python's int() does; NaN is 0 and one past int64 saturates (converting
  // it directly would be undefined behaviour).
  int64_t as_int() const { return kind_ == Kind::kFloat ? float_to_int(float_) : int_; }
  static int64_t float_to_int(double f) {
    if (!(f == f)) return 0;
    if (f >= 9223372036854775807.0) return INT64_MAX;
    if (f <= -9223372036854775808.0) return INT64_MIN;
    return static_cast<int64_t>(f);
  }
  double as_float() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return string_; }
  Array& as_array() const { return *array_; }
  Object& as_object() const { return *object_; }
  const Function& as_function() const { return *function_; }

  // Object member (undefined when absent or not an object); set() replaces or appends.
  Value get(const std::string& key) const;
  void set(const std::string& key, Value value) const;

  // How {{ value }} prints it (Python str(): None, True, 1.5, ['a', 1], {'k': 'v'}).
  std::string str() const;
  // json.dumps with transformers' tojson defaults; indent < 0 means none.
  std::string to_json(int indent = -1) const;

 private:
  Kind kind_ = Kind::kUndefined;
  int64_t int_ = 0;
  double float_ = 0;
  std::string string_;
  std::shared_ptr<Array> array_;
  std::shared_ptr<Object> object_;
  std::shared_ptr<Function> function_;
};

struct RenderResult {
  std::string text;
  // Byte ranges [first, second) of `text` written inside {% generation %} blocks.
  std::vector<std::pair<size_t, size_t>> generation_spans;
};

struct TemplateProgram;  // parsed form (private)

// The Jinja environment a template is compiled in. The defaults are transformers' chat template
// environment; lm-evaluation-harness renders task prompts (doc_to_text, ...) with Jinja's own
// defaults plus keep_trailing_newline and StrictUndefined (lm_eval.utils.apply_template).
struct TemplateOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
  // Printing an undefined name, or taking an attribute/item of one, is an error naming it
  // (`is defined` and `| default` still work), as with jinja2.StrictUndefined.
  bool strict_undefined = false;
};

class Template {
 public:
  // Parses once; throws TemplateError "chat template line N: ..." on syntax errors.
  explicit Template(const std::string& source, const TemplateOptions& options = {});
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // `context` is an object of globals (messages, add_generation_prompt, bos_token, ...).
  RenderResult render(const Value& context) const;
  bool has_generation_blocks() const;

 private:
  std::shared_ptr<const TemplateProgram> program_;
};

}  // namespace edgerazor::text::jinja
