// Private to src/text: the Jinja built-ins in chat_template_jinja_builtins.cpp that the renderer
// in chat_template_jinja_eval.cpp calls: errors, Python comparison, membership and iteration
// rules, str/dict methods, tests and filters.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "edgerazor/text/chat_template_jinja.h"

namespace edgerazor::text::jinja {

// Throws TemplateError("chat template line <line>: <message>").
[[noreturn]] void fail(int line, const std::string& message);
// Python-ish type name for error messages ("list", "dict", ...).
const char* kind_name(Value::Kind k);

// Operations with Python semantics.
bool equal(const Value& a, const Value& b);
int compare(const Value& a, const Value& b, int line);  // -1, 0, 1; numbers or strings only
// Code points of a UTF-8 string (Python indexes and slices strings by character).
std::vector<std::string> characters(const std::string& s);
bool contains(const Value& container, const Value& item, int line);  // `item in container`
Array iterate(const Value& v, int line);  // list items, dict keys, string characters; none/undefined: empty
Array items_of(const Value& v);           // dict.items() as [key, value] pairs
Value attribute(const Value& v, const std::string& name);

// Positional argument `index`, else keyword argument `name`, else undefined.
Value arg(const std::vector<Value>& args, const Kwargs& kwargs, size_t index, const char* name);
// Methods of str and dict that chat templates call; false when `self` has no such method.
bool call_method(const Value& self, const std::string& name, const std::vector<Value>& args,
                 const Kwargs& kwargs, int line, Value& result);
// `v is name(args...)`.
bool run_test(const std::string& name, const Value& v, const std::vector<Value>& args, int line);
// `v | name(args..., kwargs...)`.
Value apply_filter(const std::string& name, const Value& v, const std::vector<Value>& args, const Kwargs& kwargs,
                   int line);

}  // namespace edgerazor::text::jinja
