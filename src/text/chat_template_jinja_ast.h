// Private to src/text: the parsed form of a Jinja chat template (expressions and statements),
// produced by chat_template_jinja_parse.cpp and run by chat_template_jinja_eval.cpp.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/text/chat_template_jinja.h"

namespace edgerazor::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kAttr,     // children[0].name
    kIndex,    // children[0][children[1]]
    kSlice,    // children[0][children[1]:children[2]:children[3]] (null = omitted)
    kCall,     // children[0](children[1..], kwargs)
    kFilter,   // children[0] | name(children[1..], kwargs)
    kTest,     // children[0] is [not] name(children[1..])
    kUnary,    // name in {"-", "+"} children[0]
    kNot,      // not children[0]
    kBinary,   // children[0] name children[1]; name is an arithmetic or comparison operator
    kAnd,
    kOr,
    kTernary,  // children[1] if children[0] else children[2] (children[2] may be null)
    kList,     // [children...]
    kTuple,    // (children...)
    kDict,     // {kwargs keys: children} as pairs in `pairs`
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  Value literal;
  std::string name;
  bool negated = false;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::pair<ExprPtr, ExprPtr>> pairs;
};

struct Node;
using Body = std::vector<Node>;

struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kSetBlock, kMacro, kBreak, kContinue, kGeneration };
  Kind kind = Kind::kText;
  int line = 0;
  std::string text;                                   // kText
  ExprPtr expr;                                       // kOutput, kFor iterable, kSet value
  std::vector<std::pair<ExprPtr, Body>> branches;     // kIf: (condition, body) ...
  Body body;                                          // kFor/kSetBlock/kMacro/kGeneration body
  Body else_body;                                     // kIf else, kFor else
  std::vector<std::string> targets;                   // kFor loop names; kSet/kSetBlock: name or ns.attr split
  ExprPtr condition;                                  // kFor `if` filter
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro (name, default or null)
};

struct TemplateProgram {
  Body body;
  bool strict_undefined = false;
  bool has_generation = false;
};

// chat_template_jinja_parse.cpp
std::shared_ptr<TemplateProgram> parse_template(const std::string& source, const TemplateOptions& options);

}  // namespace edgerazor::text::jinja
