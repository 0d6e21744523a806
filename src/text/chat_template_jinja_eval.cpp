// Jinja chat templates: the renderer, which evaluates statements and expressions (values and
// their Python str / JSON forms: chat_template_jinja_value.cpp). The built-in filters, tests, str/dict methods and the comparison,
// membership and iteration rules they share with the renderer are in
// chat_template_jinja_builtins.cpp.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <unordered_map>

#include "chat_template_jinja_ast.h"
#include "chat_template_jinja_builtins.h"

namespace edgerazor::text::jinja {
namespace {

// The most items a range() or bytes a string repetition may make. Python makes ranges lazily and
// has memory to spare; a chat template needs a few thousand, and a hostile one must not exhaust RAM.
constexpr int64_t kMaxTemplateItems = int64_t{1} << 24;

// ---------------------------------------------------------------------------------------------
// Arithmetic and slicing with Python semantics

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
    const int64_t times = std::max<int64_t>(b.as_int(), 0);
    if (!a.as_string().empty() && times > kMaxTemplateItems / static_cast<int64_t>(a.as_string().size()))
      fail(line, "'" + a.as_string().substr(0, 20) + "' * " + std::to_string(times) + " would be larger than " +
                     std::to_string(kMaxTemplateItems) + " bytes");
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += a.as_string();
    return Value(std::move(out));
  }
  const auto numeric = [](const Value& v) { return v.is_number() || v.kind() == Value::Kind::kBool; };
  if (!numeric(a) || !numeric(b))
    fail(line, "unsupported operand types for " + op + ": " + kind_name(a.kind()) + " and " + kind_name(b.kind()));
  const bool ints = a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat;
  const int64_t x = a.as_int(), y = b.as_int();
  const double fx = a.as_float(), fy = b.as_float();
  // Python's integers do not overflow; ours are int64, so a result past it is an error.
  const auto overflow = [&] { fail(line, "integer overflow in " + std::to_string(x) + " " + op + " " + std::to_string(y)); };
  if (ints && (op == "+" || op == "-" || op == "*")) {
    int64_t r = 0;
    const bool past = op == "+"   ? __builtin_add_overflow(x, y, &r)
                      : op == "-" ? __builtin_sub_overflow(x, y, &r)
                                  : __builtin_mul_overflow(x, y, &r);
    if (past) overflow();
    return Value(r);
  }
  if (op == "+") return Value(fx + fy);
  if (op == "-") return Value(fx - fy);
  if (op == "*") return Value(fx * fy);
  if (op == "**") {
    if (!ints || y < 0) return Value(std::pow(fx, fy));
    const double p = std::pow(fx, fy);
    if (!(std::fabs(p) < 9223372036854775807.0)) overflow();
    return Value(static_cast<int64_t>(std::llround(p)));
  }
  if (ints && y == -1 && x == INT64_MIN && (op == "//" || op == "%")) overflow();
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
  // Stepping stops before it could pass int64 (a step of 10**18 over a short list).
  if (step > 0) {
    for (int64_t i = clamp(start, 0), e = clamp(stop, n); i < e; i = e - i > step ? i + step : e) out.push_back(i);
  } else {
    for (int64_t i = clamp(start, n - 1), e = clamp(stop, -1); i > e; i = i - e > -step ? i + step : e) out.push_back(i);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Renderer

struct LoopControl {
  enum class Kind { kNone, kBreak, kContinue } kind = Kind::kNone;
};

class Renderer {
 public:
  Renderer(const Value& context, RenderResult& result, bool strict_undefined)
      : result_(result), strict_undefined_(strict_undefined) {
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
      // How many items, in unsigned arithmetic that cannot overflow: Python makes them lazily, we
      // make them all, so a range past the bound is refused rather than exhausting memory.
      const uint64_t span = step > 0 ? (stop > start ? uint64_t(stop) - uint64_t(start) : 0)
                                     : (start > stop ? uint64_t(start) - uint64_t(stop) : 0);
      const uint64_t magnitude = step > 0 ? uint64_t(step) : uint64_t(0) - uint64_t(step);
      const uint64_t count = span / magnitude + (span % magnitude != 0);
      if (count > uint64_t(kMaxTemplateItems))
        throw TemplateError("range(" + std::to_string(start) + ", " + std::to_string(stop) + ", " + std::to_string(step) +
                            ") would hold " + std::to_string(count) + " items, more than " +
                            std::to_string(kMaxTemplateItems));
      Array out;
      out.reserve(count);
      for (uint64_t k = 0; k < count; ++k) out.push_back(Value(static_cast<int64_t>(uint64_t(start) + k * uint64_t(step))));
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
        case Node::Kind::kOutput: result_.text += defined(eval(*node.expr), *node.expr).str(); break;
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
        case Node::Kind::kSetBlock: assign(node, Value(render_captured(node.body, control))); break;
        case Node::Kind::kMacro: define_macro(node); break;
        case Node::Kind::kBreak: control.kind = LoopControl::Kind::kBreak; return;
        case Node::Kind::kContinue: control.kind = LoopControl::Kind::kContinue; return;
        case Node::Kind::kGeneration: {
          // Spans are byte ranges of the final text: text captured by a macro or {% set %} block
          // moves (or vanishes) afterwards, so a span there would point at the wrong bytes.
          if (capturing_ > 0)
            fail(node.line, "a {% generation %} block inside a macro or a {% set %} block is not supported");
          if (in_generation_) {  // nested: the outer block's span covers it
            render(node.body, control);
            break;
          }
          const size_t begin = result_.text.size();
          in_generation_ = true;
          render(node.body, control);
          in_generation_ = false;
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

  // Renders body into a string of its own (a macro's result, a {% set %} block's value) rather than
  // into the output.
  std::string render_captured(const Body& body, LoopControl& control) {
    const size_t mark = result_.text.size();
    ++capturing_;
    render(body, control);
    --capturing_;
    std::string captured = result_.text.substr(mark);
    result_.text.resize(mark);
    return captured;
  }

  void define_macro(const Node& node) {
    const Node* macro = &node;
    frames_.back()[node.targets[0]] = Value(Function([this, macro](const std::vector<Value>& args, const Kwargs& kwargs) {
      // A macro that calls itself without end would overflow the stack (Python: RecursionError).
      if (macro_depth_ >= kMaxMacroDepth)
        fail(macro->line, "macro '" + macro->targets[0] + "' calls nested more than " + std::to_string(kMaxMacroDepth) +
                              " deep (endless recursion?)");
      ++macro_depth_;
      struct Leave { int& depth; ~Leave() { --depth; } } leave{macro_depth_};
      Frame frame;
      for (size_t k = 0; k < macro->params.size(); ++k) {
        Value v = arg(args, kwargs, k, macro->params[k].first.c_str());
        if (v.is_undefined() && macro->params[k].second) v = eval(*macro->params[k].second);
        frame[macro->params[k].first] = v;
      }
      frames_.push_back(std::move(frame));
      LoopControl control;
      std::string out = render_captured(macro->body, control);
      frames_.pop_back();
      return Value(std::move(out));
    }));
  }

  Value call_function(const Value& callee, const Expr& e, std::vector<Value> args, Kwargs kwargs) {
    if (callee.kind() != Value::Kind::kFunction) fail(e.line, "'" + (e.children[0]->name) + "' is not callable");
    return callee.as_function()(args, kwargs);
  }
  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.literal;
      case Expr::Kind::kName: return lookup(e.name);
      case Expr::Kind::kAttr: return attribute(defined(eval(*e.children[0]), *e.children[0]), e.name);
      case Expr::Kind::kIndex: {
        const Value obj = defined(eval(*e.children[0]), *e.children[0]);
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
        return apply_filter(e.name, v, args, kwargs, e.line);
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
        if (v.kind() == Value::Kind::kFloat) return Value(-v.as_float());
        if (v.as_int() == INT64_MIN) fail(e.line, "integer overflow in -" + std::to_string(v.as_int()));
        return Value(-v.as_int());
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

  // StrictUndefined: an undefined value may be tested or defaulted, not printed or looked into.
  const Value& defined(const Value& v, const Expr& e) const {
    if (strict_undefined_ && v.is_undefined())
      fail(e.line, (e.kind == Expr::Kind::kName ? "'" + e.name + "'"
                    : e.kind == Expr::Kind::kAttr ? "attribute '" + e.name + "'"
                                                  : std::string("a value")) + " is undefined");
    return v;
  }

  RenderResult& result_;
  bool strict_undefined_ = false;
  std::vector<Frame> frames_;
  static constexpr int kMaxMacroDepth = 100;
  int macro_depth_ = 0;  // macro calls in progress
  int capturing_ = 0;     // macro bodies and {% set %} blocks being rendered (their text moves)
  bool in_generation_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Template

Template::Template(const std::string& source, const TemplateOptions& options)
    : program_(parse_template(source, options)) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

RenderResult Template::render(const Value& context) const {
  RenderResult result;
  Renderer(context, result, program_->strict_undefined).run(program_->body);
  return result;
}

bool Template::has_generation_blocks() const { return program_->has_generation; }

}  // namespace edgerazor::text::jinja
