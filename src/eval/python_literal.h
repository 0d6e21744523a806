// Private to src/eval: ast.literal_eval for the strings lm-eval passes to it (a rendered
// doc_to_choice such as "['yes', 'no']", a doc_to_target that looks like a list or a number).
#pragma once

#include <string>

#include "edgerazor/text/chat_template_jinja.h"

namespace edgerazor::eval::detail {

// Python literals: str (single/double/triple quotes, escapes, adjacent concatenation), int,
// float, True/False/None, list, tuple (as a list), dict, unary minus. std::invalid_argument
// on anything else, as literal_eval raises ValueError/SyntaxError.
text::jinja::Value python_literal_eval(const std::string& text);

}  // namespace edgerazor::eval::detail
