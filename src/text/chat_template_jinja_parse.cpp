// Jinja chat templates: preprocessing (trim_blocks, lstrip_blocks, trailing newline), lexing of
// text and tags with whitespace control, and a recursive-descent parser with Jinja's operator
// precedence (or < and < not < comparisons/in < + - < ~ < * / // % < ** < unary < filters/tests
// < postfix).
#include <cerrno>
#include <algorithm>
#include <cctype>
#include <cstring>

#include "chat_template_jinja_ast.h"

namespace edgerazor::text::jinja {
namespace {

[[noreturn]] void fail(int line, const std::string& message) {
  throw TemplateError("chat template line " + std::to_string(line) + ": " + message);
}

// What the Jinja environment (transformers': trim_blocks, lstrip_blocks, keep_trailing_newline
// off) does before lexing, written the way @huggingface/jinja does it.
std::string preprocess(std::string src, const TemplateOptions& options) {
  if (!options.keep_trailing_newline && !src.empty() && src.back() == '\n') src.pop_back();
  if (!options.lstrip_blocks && !options.trim_blocks) return src;
  std::string out;
  out.reserve(src.size());
  // lstrip_blocks: spaces/tabs from a line start up to a block or comment tag.
  size_t line_start = 0;
  for (size_t i = 0; i <= src.size(); ++i) {
    if (i == src.size() || src[i] == '\n') {
      std::string_view line(src.data() + line_start, i - line_start);
      size_t k = 0;
      while (k < line.size() && (line[k] == ' ' || line[k] == '\t')) ++k;
      if (options.lstrip_blocks && k + 1 < line.size() && line[k] == '{' && (line[k + 1] == '%' || line[k + 1] == '#' || line[k + 1] == '-'))
        line.remove_prefix(k);
      out.append(line);
      if (i < src.size()) out += '\n';
      line_start = i + 1;
    }
  }
  // trim_blocks: the first newline after a block or comment tag.
  std::string trimmed;
  trimmed.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    trimmed += out[i];
    if (options.trim_blocks && out[i] == '}' && i > 0 && (out[i - 1] == '%' || out[i - 1] == '#' || out[i - 1] == '-') &&
        i + 1 < out.size() && out[i + 1] == '\n')
      ++i;
  }
  return trimmed;
}

struct Token {
  enum class Type { kText, kOpenExpr, kOpenStmt, kClose, kName, kString, kInt, kFloat, kOp, kEnd };
  Type type;
  std::string text;
  int line;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

void rstrip_text(std::vector<Token>& tokens) {
  if (tokens.empty() || tokens.back().type != Token::Type::kText) return;
  std::string& t = tokens.back().text;
  while (!t.empty() && is_space(t.back())) t.pop_back();
}

std::vector<Token> lex(const std::string& src) {
  std::vector<Token> tokens;
  size_t i = 0;
  int line = 1;
  bool strip_next = false;
  const auto count_lines = [&](size_t from, size_t to) {
    for (size_t k = from; k < to; ++k) line += src[k] == '\n';
  };
  while (i < src.size()) {
    // Text up to the next tag.
    size_t open = i;
    while (true) {
      open = src.find('{', open);
      if (open == std::string::npos || open + 1 >= src.size()) {
        open = std::string::npos;
        break;
      }
      const char c = src[open + 1];
      if (c == '{' || c == '%' || c == '#') break;
      ++open;
    }
    const size_t text_end = open == std::string::npos ? src.size() : open;
    std::string text = src.substr(i, text_end - i);
    if (strip_next) {
      size_t k = 0;
      while (k < text.size() && is_space(text[k])) ++k;
      text.erase(0, k);
      strip_next = false;
    }
    const int text_line = line;
    count_lines(i, text_end);
    if (!text.empty()) tokens.push_back({Token::Type::kText, std::move(text), text_line});
    if (open == std::string::npos) break;
    i = open + 2;
    const char kind = src[open + 1];
    const bool strip_before = i < src.size() && src[i] == '-';
    if (strip_before || (i < src.size() && src[i] == '+')) ++i;
    if (strip_before) rstrip_text(tokens);
    if (kind == '#') {
      const size_t close = src.find("#}", i);
      if (close == std::string::npos) fail(line, "unterminated comment");
      strip_next = close > i && src[close - 1] == '-';
      count_lines(i, close);
      i = close + 2;
      continue;
    }
    tokens.push_back({kind == '{' ? Token::Type::kOpenExpr : Token::Type::kOpenStmt, "", line});
    const char closer = kind == '{' ? '}' : '%';
    // Tokens inside the tag.
    while (true) {
      while (i < src.size() && is_space(src[i])) line += src[i++] == '\n';
      if (i >= src.size()) fail(line, "unterminated tag");
      const char c = src[i];
      if ((c == '-' || c == '+') && i + 2 < src.size() + 0 && src[i + 1] == closer && src[i + 2] == '}') {
        strip_next = c == '-';
        i += 3;
        break;
      }
      if (c == closer && i + 1 < src.size() && src[i + 1] == '}') {
        i += 2;
        break;
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t k = i;
        while (k < src.size() && (std::isalnum(static_cast<unsigned char>(src[k])) || src[k] == '_')) ++k;
        tokens.push_back({Token::Type::kName, src.substr(i, k - i), line});
        i = k;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t k = i;
        while (k < src.size() && (std::isdigit(static_cast<unsigned char>(src[k])) || src[k] == '_')) ++k;
        bool is_float = false;
        if (k + 1 < src.size() && src[k] == '.' && std::isdigit(static_cast<unsigned char>(src[k + 1]))) {
          is_float = true;
          ++k;
          while (k < src.size() && (std::isdigit(static_cast<unsigned char>(src[k])) || src[k] == '_')) ++k;
        }
        // An exponent, as Jinja's float_re has it: 1e5, 2.5E-3 (a float even without a '.').
        if (k < src.size() && (src[k] == 'e' || src[k] == 'E')) {
          size_t digits = k + 1;
          if (digits < src.size() && (src[digits] == '+' || src[digits] == '-')) ++digits;
          if (digits < src.size() && std::isdigit(static_cast<unsigned char>(src[digits]))) {
            is_float = true;
            k = digits;
            while (k < src.size() && (std::isdigit(static_cast<unsigned char>(src[k])) || src[k] == '_')) ++k;
          }
        }
        std::string number = src.substr(i, k - i);
        number.erase(std::remove(number.begin(), number.end(), '_'), number.end());
        tokens.push_back({is_float ? Token::Type::kFloat : Token::Type::kInt, number, line});
        i = k;
      } else if (c == '\'' || c == '"') {
        std::string value;
        size_t k = i + 1;
        while (k < src.size() && src[k] != c) {
          if (src[k] == '\\' && k + 1 < src.size()) {
            const char e = src[++k];
            switch (e) {
              case 'n': value += '\n'; break;
              case 't': value += '\t'; break;
              case 'r': value += '\r'; break;
              case 'b': value += '\b'; break;
              case 'f': value += '\f'; break;
              case 'v': value += '\v'; break;
              case '0': value += '\0'; break;
              case '\\': case '\'': case '"': value += e; break;
              default: value += '\\', value += e; break;  // Python keeps unknown escapes
            }
            ++k;
          } else {
            line += src[k] == '\n';
            value += src[k++];
          }
        }
        if (k >= src.size()) fail(line, "unterminated string literal");
        tokens.push_back({Token::Type::kString, std::move(value), line});
        i = k + 1;
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                           "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
        const char* op = nullptr;
        for (const char* candidate : kOps)
          if (src.compare(i, std::strlen(candidate), candidate) == 0) {
            op = candidate;
            break;
          }
        if (!op) fail(line, std::string("unexpected character '") + c + "'");
        tokens.push_back({Token::Type::kOp, op, line});
        i += std::strlen(op);
      }
    }
    tokens.push_back({Token::Type::kClose, "", line});
  }
  tokens.push_back({Token::Type::kEnd, "", line});
  return tokens;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  std::shared_ptr<TemplateProgram> parse() {
    auto program = std::make_shared<TemplateProgram>();
    std::string stopped;
    program->body = parse_body({}, stopped);
    program->has_generation = has_generation_;
    return program;
  }

 private:
  const Token& peek(size_t ahead = 0) const { return t_[std::min(pos_ + ahead, t_.size() - 1)]; }
  const Token& next() { return t_[pos_ < t_.size() - 1 ? pos_++ : pos_]; }
  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).type == Token::Type::kOp && peek(ahead).text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).type == Token::Type::kName && peek(ahead).text == name;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(peek().line, std::string("expected '") + op + "', got '" + peek().text + "'");
    ++pos_;
  }
  std::string expect_name() {
    if (peek().type != Token::Type::kName) fail(peek().line, "expected a name, got '" + peek().text + "'");
    return next().text;
  }
  void expect_close() {
    if (peek().type != Token::Type::kClose) fail(peek().line, "expected the end of the tag, got '" + peek().text + "'");
    ++pos_;
  }

  // Parses nodes until a {% tag %} whose keyword is in `stops`; leaves pos_ after the keyword.
  Body parse_body(const std::vector<std::string>& stops, std::string& stopped) {
    NestingScope scope(*this);
    deeper(peek().line);
    Body body;
    while (true) {
      const Token& tok = peek();
      if (tok.type == Token::Type::kEnd) {
        if (!stops.empty()) fail(tok.line, "missing {% " + stops.back() + " %}");
        return body;
      }
      if (tok.type == Token::Type::kText) {
        Node n;
        n.kind = Node::Kind::kText, n.line = tok.line, n.text = tok.text;
        body.push_back(std::move(n));
        ++pos_;
      } else if (tok.type == Token::Type::kOpenExpr) {
        ++pos_;
        Node n;
        n.kind = Node::Kind::kOutput, n.line = tok.line, n.expr = parse_expression();
        expect_close();
        body.push_back(std::move(n));
      } else if (tok.type == Token::Type::kOpenStmt) {
        ++pos_;
        const std::string keyword = expect_name();
        for (const std::string& s : stops)
          if (keyword == s) {
            stopped = keyword;
            return body;
          }
        body.push_back(parse_statement(keyword, tok.line));
      } else {
        fail(tok.line, "unexpected '" + tok.text + "'");
      }
    }
  }

  Node parse_statement(const std::string& keyword, int line) {
    Node n;
    n.line = line;
    std::string stopped;
    if (keyword == "if") {
      n.kind = Node::Kind::kIf;
      ExprPtr cond = parse_expression();
      expect_close();
      while (true) {
        Body body = parse_body({"elif", "else", "endif"}, stopped);
        n.branches.emplace_back(std::move(cond), std::move(body));
        if (stopped == "elif") {
          cond = parse_expression();
          expect_close();
          continue;
        }
        expect_close();
        if (stopped == "else") {
          n.else_body = parse_body({"endif"}, stopped);
          expect_close();
        }
        break;
      }
    } else if (keyword == "for") {
      n.kind = Node::Kind::kFor;
      const bool paren = is_op("(");
      if (paren) ++pos_;
      n.targets.push_back(expect_name());
      while (is_op(",")) {
        ++pos_;
        n.targets.push_back(expect_name());
      }
      if (paren) expect_op(")");
      if (!is_name("in")) fail(peek().line, "expected 'in' in for loop");
      ++pos_;
      n.expr = parse_expression(/*allow_ternary=*/false);
      if (is_name("if")) {
        ++pos_;
        n.condition = parse_expression();
      }
      if (is_name("recursive")) fail(peek().line, "recursive loops are not supported");
      expect_close();
      n.body = parse_body({"else", "endfor"}, stopped);
      expect_close();
      if (stopped == "else") {
        n.else_body = parse_body({"endfor"}, stopped);
        expect_close();
      }
    } else if (keyword == "set") {
      n.targets.push_back(expect_name());
      if (is_op(".")) {
        ++pos_;
        n.targets.push_back(expect_name());
      }
      if (is_op("=")) {
        ++pos_;
        n.kind = Node::Kind::kSet;
        n.expr = parse_expression();
        expect_close();
      } else {
        n.kind = Node::Kind::kSetBlock;
        expect_close();
        n.body = parse_body({"endset"}, stopped);
        expect_close();
      }
    } else if (keyword == "macro") {
      n.kind = Node::Kind::kMacro;
      n.targets.push_back(expect_name());
      expect_op("(");
      while (!is_op(")")) {
        std::string param = expect_name();
        ExprPtr default_value;
        if (is_op("=")) {
          ++pos_;
          default_value = parse_expression();
        }
        n.params.emplace_back(std::move(param), std::move(default_value));
        if (!is_op(")")) expect_op(",");
      }
      ++pos_;
      expect_close();
      n.body = parse_body({"endmacro"}, stopped);
      expect_close();
    } else if (keyword == "break" || keyword == "continue") {
      n.kind = keyword == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      expect_close();
    } else if (keyword == "generation") {
      n.kind = Node::Kind::kGeneration;
      has_generation_ = true;
      expect_close();
      n.body = parse_body({"endgeneration"}, stopped);
      expect_close();
    } else {
      fail(line, "unsupported tag {% " + keyword + " %}");
    }
    return n;
  }

  // How deep the tree being parsed is. Parsing, rendering and freeing a tree all recurse once per
  // level, so a template nested past the bound (a thousand '(' or a chain 'a+a+a+...' of them) is
  // an error here rather than a stack overflow later; real templates nest a dozen levels.
  static constexpr int kMaxNesting = 200;
  int nesting_ = 0;
  void deeper(int line) {
    if (++nesting_ > kMaxNesting)
      fail(line, "the template nests more than " + std::to_string(kMaxNesting) + " levels deep");
  }
  // Every parse function that loops or recurses holds one: the levels it added end with it.
  struct NestingScope {
    explicit NestingScope(Parser& parser) : parser(parser), saved(parser.nesting_) {}
    ~NestingScope() { parser.nesting_ = saved; }
    Parser& parser;
    const int saved;
  };

  ExprPtr make(Expr::Kind kind, int line) {
    deeper(line);
    auto e = std::make_unique<Expr>();
    e->kind = kind, e->line = line;
    return e;
  }

  ExprPtr parse_expression(bool allow_ternary = true) {
    NestingScope scope(*this);
    deeper(peek().line);
    ExprPtr value = parse_or();
    if (!allow_ternary) return value;
    while (is_name("if")) {
      const int line = next().line;
      auto e = make(Expr::Kind::kTernary, line);
      ExprPtr cond = parse_or();
      ExprPtr otherwise;
      if (is_name("else")) {
        ++pos_;
        otherwise = parse_expression();
      }
      e->children.push_back(std::move(cond));
      e->children.push_back(std::move(value));
      e->children.push_back(std::move(otherwise));
      value = std::move(e);
    }
    return value;
  }
  ExprPtr parse_or() {
    NestingScope scope(*this);
    ExprPtr left = parse_and();
    while (is_name("or")) {
      auto e = make(Expr::Kind::kOr, next().line);
      e->children.push_back(std::move(left));
      e->children.push_back(parse_and());
      left = std::move(e);
    }
    return left;
  }
  ExprPtr parse_and() {
    NestingScope scope(*this);
    ExprPtr left = parse_not();
    while (is_name("and")) {
      auto e = make(Expr::Kind::kAnd, next().line);
      e->children.push_back(std::move(left));
      e->children.push_back(parse_not());
      left = std::move(e);
    }
    return left;
  }
  ExprPtr parse_not() {
    NestingScope scope(*this);
    if (is_name("not")) {
      auto e = make(Expr::Kind::kNot, next().line);
      e->children.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    NestingScope scope(*this);
    ExprPtr left = parse_math1();
    while (true) {
      std::string op;
      if (peek().type == Token::Type::kOp &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == ">" ||
           peek().text == "<=" || peek().text == ">=")) {
        op = peek().text;
        ++pos_;
      } else if (is_name("in")) {
        op = "in";
        ++pos_;
      } else if (is_name("not") && is_name("in", 1)) {
        op = "not in";
        pos_ += 2;
      } else {
        return left;
      }
      auto e = make(Expr::Kind::kBinary, peek().line);
      e->name = op;
      e->children.push_back(std::move(left));
      e->children.push_back(parse_math1());
      left = std::move(e);
    }
  }
  ExprPtr binary_chain(ExprPtr (Parser::*operand)(), std::initializer_list<const char*> ops) {
    NestingScope scope(*this);
    ExprPtr left = (this->*operand)();
    while (true) {
      const char* found = nullptr;
      for (const char* op : ops)
        if (is_op(op)) found = op;
      if (!found) return left;
      auto e = make(Expr::Kind::kBinary, next().line);
      e->name = found;
      e->children.push_back(std::move(left));
      e->children.push_back((this->*operand)());
      left = std::move(e);
    }
  }
  ExprPtr parse_math1() { return binary_chain(&Parser::parse_concat, {"+", "-"}); }
  ExprPtr parse_concat() { return binary_chain(&Parser::parse_math2, {"~"}); }
  ExprPtr parse_math2() { return binary_chain(&Parser::parse_pow, {"*", "/", "//", "%"}); }
  ExprPtr parse_pow() { return binary_chain(&Parser::parse_unary, {"**"}); }
  ExprPtr parse_unary() {
    NestingScope scope(*this);
    if (is_op("-") || is_op("+")) {
      auto e = make(Expr::Kind::kUnary, peek().line);
      e->name = next().text;
      e->children.push_back(parse_unary());
      return e;
    }
    return parse_filters(parse_postfix(parse_primary()));
  }

  void parse_call_args(Expr& call) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().type == Token::Type::kName && is_op("=", 1)) {
        std::string key = next().text;
        ++pos_;
        call.kwargs.emplace_back(std::move(key), parse_expression());
      } else {
        call.children.push_back(parse_expression());
      }
      if (!is_op(")")) expect_op(",");
    }
    ++pos_;
  }

  ExprPtr parse_filters(ExprPtr value) {
    NestingScope scope(*this);
    while (true) {
      if (is_op("|")) {
        const int line = next().line;
        auto e = make(Expr::Kind::kFilter, line);
        e->name = expect_name();
        e->children.push_back(std::move(value));
        if (is_op("(")) parse_call_args(*e);
        value = parse_postfix(std::move(e));
      } else if (is_name("is")) {
        const int line = next().line;
        auto e = make(Expr::Kind::kTest, line);
        if (is_name("not")) {
          e->negated = true;
          ++pos_;
        }
        // Tests named like keywords (none, true, false) arrive as names too.
        e->name = expect_name();
        e->children.push_back(std::move(value));
        if (is_op("(")) {
          parse_call_args(*e);
        } else if (peek().type == Token::Type::kString || peek().type == Token::Type::kInt ||
                   peek().type == Token::Type::kFloat ||
                   (peek().type == Token::Type::kName && !is_name("and") && !is_name("or") &&
                    !is_name("if") && !is_name("else") && !is_name("in") && !is_name("not") &&
                    !is_name("is"))) {
          e->children.push_back(parse_primary());  // `x is divisibleby 3`, `x is sameas y`
        }
        value = std::move(e);
      } else {
        return value;
      }
    }
  }

  ExprPtr parse_postfix(ExprPtr value) {
    NestingScope scope(*this);
    while (true) {
      if (is_op(".")) {
        const int line = next().line;
        auto e = make(Expr::Kind::kAttr, line);
        if (peek().type == Token::Type::kInt) e->name = next().text;
        else e->name = expect_name();
        e->children.push_back(std::move(value));
        value = std::move(e);
      } else if (is_op("[")) {
        const int line = next().line;
        ExprPtr parts[3];
        bool is_slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) parts[k] = parse_expression();
          if (k < 2 && is_op(":")) {
            ++pos_;
            is_slice = true;
          } else {
            break;
          }
        }
        expect_op("]");
        auto e = make(is_slice ? Expr::Kind::kSlice : Expr::Kind::kIndex, line);
        e->children.push_back(std::move(value));
        if (!is_slice && !parts[0]) fail(line, "empty subscript");
        e->children.push_back(std::move(parts[0]));
        if (is_slice) {
          e->children.push_back(std::move(parts[1]));
          e->children.push_back(std::move(parts[2]));
        }
        value = std::move(e);
      } else if (is_op("(")) {
        auto e = make(Expr::Kind::kCall, peek().line);
        e->children.push_back(std::move(value));
        parse_call_args(*e);
        value = std::move(e);
      } else {
        return value;
      }
    }
  }

  ExprPtr parse_primary() {
    const Token& tok = peek();
    const int line = tok.line;
    if (tok.type == Token::Type::kString) {
      auto e = make(Expr::Kind::kLiteral, line);
      std::string s = next().text;
      while (peek().type == Token::Type::kString) s += next().text;  // implicit concatenation
      e->literal = Value(std::move(s));
      return e;
    }
    if (tok.type == Token::Type::kInt) {
      auto e = make(Expr::Kind::kLiteral, line);
      const Token& digits = next();
      errno = 0;
      const long long value = std::strtoll(digits.text.c_str(), nullptr, 10);
      if (errno == ERANGE) fail(digits.line, "integer literal " + digits.text + " is out of range");
      e->literal = Value(static_cast<int64_t>(value));
      return e;
    }
    if (tok.type == Token::Type::kFloat) {
      auto e = make(Expr::Kind::kLiteral, line);
      // strtod: a literal too large is inf, as in Python, rather than an exception.
      e->literal = Value(std::strtod(next().text.c_str(), nullptr));
      return e;
    }
    if (tok.type == Token::Type::kName) {
      const std::string name = next().text;
      auto e = make(Expr::Kind::kLiteral, line);
      if (name == "true" || name == "True") e->literal = Value(true);
      else if (name == "false" || name == "False") e->literal = Value(false);
      else if (name == "none" || name == "None") e->literal = Value::none();
      else e->kind = Expr::Kind::kName, e->name = name;
      return e;
    }
    if (is_op("(")) {
      ++pos_;
      if (is_op(")")) {
        ++pos_;
        return make(Expr::Kind::kTuple, line);
      }
      ExprPtr first = parse_expression();
      if (!is_op(",")) {
        expect_op(")");
        return first;
      }
      auto e = make(Expr::Kind::kTuple, line);
      e->children.push_back(std::move(first));
      while (is_op(",")) {
        ++pos_;
        if (is_op(")")) break;
        e->children.push_back(parse_expression());
      }
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      ++pos_;
      auto e = make(Expr::Kind::kList, line);
      while (!is_op("]")) {
        e->children.push_back(parse_expression());
        if (!is_op("]")) expect_op(",");
      }
      ++pos_;
      return e;
    }
    if (is_op("{")) {
      ++pos_;
      auto e = make(Expr::Kind::kDict, line);
      while (!is_op("}")) {
        ExprPtr key = parse_expression();
        expect_op(":");
        e->pairs.emplace_back(std::move(key), parse_expression());
        if (!is_op("}")) expect_op(",");
      }
      ++pos_;
      return e;
    }
    fail(line, "unexpected '" + tok.text + "' in expression");
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  bool has_generation_ = false;
};

}  // namespace

std::shared_ptr<TemplateProgram> parse_template(const std::string& source, const TemplateOptions& options) {
  auto program = Parser(lex(preprocess(source, options))).parse();
  program->strict_undefined = options.strict_undefined;
  return program;
}

}  // namespace edgerazor::text::jinja
