// Prompt construction of lm_eval.api.task.ConfigurableTask (0.4.13): doc_to_* fields,
// build_qa_turn, the few-shot sampler and multiturn_to_singleturn.
#include "edgerazor/eval/task_prompts.h"

#include <algorithm>
#include <map>

#include "edgerazor/core/error.h"
#include "edgerazor/text/python_str.h"
#include "python_literal.h"

namespace edgerazor::eval {
namespace {

using text::ends_with_python_space;
using text::starts_with_python_space;

// str.isdigit() for ASCII text.
bool is_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// lm_eval.api.utils.maybe_delimit
std::string maybe_delimit(const std::string& prefix, const std::string& suffix, const std::string& delimiter) {
  if (prefix.empty()) return suffix;
  if (suffix.empty()) return prefix;
  return ends_with_python_space(prefix) || starts_with_python_space(suffix) ? prefix + suffix : prefix + delimiter + suffix;
}

struct Message {
  std::string role, content, delimiter;
  std::string to_text() const { return content + delimiter; }
};

bool same_doc(const Value& a, const Value& b) { return a.to_json() == b.to_json(); }

}  // namespace

struct TaskPrompts::Templates {
  std::map<std::string, text::jinja::Template> compiled;
};

TaskPrompts::TaskPrompts(const TaskConfig& task, const TaskData& data, uint64_t fewshot_seed, ChatFormatter chat,
                         bool fewshot_as_multiturn)
    : task_(task), data_(data), rnd_(fewshot_seed), chat_(std::move(chat)), fewshot_as_multiturn_(fewshot_as_multiturn),
      templates_(std::make_unique<Templates>()) {
  eval_split_ = task.test_split ? *task.test_split : *task.validation_split;
  // Task.fewshot_docs(): the few-shot split, else training, validation, test.
  const std::optional<std::string> fewshot = task.fewshot_split   ? task.fewshot_split
                                             : task.training_split ? task.training_split
                                             : task.validation_split ? task.validation_split
                                                                     : task.test_split;
  if (fewshot) fewshot_docs_ = data.splits.at(*fewshot);
}

TaskPrompts::~TaskPrompts() = default;

const std::vector<Value>& TaskPrompts::eval_docs() const { return data_.splits.at(eval_split_); }

std::string TaskPrompts::where(const char* key, size_t doc_id) const {
  return task_.file + ": " + key + ", document " + std::to_string(doc_id) + " of split '" + eval_split_ + "'";
}

bool TaskPrompts::is_feature(const std::string& name) const {
  return std::find(data_.features.begin(), data_.features.end(), name) != data_.features.end();
}

std::string TaskPrompts::render_template(const std::string& source, const Value& doc, size_t doc_id, const char* key) const {
  auto it = templates_->compiled.find(source);
  try {
    if (it == templates_->compiled.end()) {
      text::jinja::TemplateOptions options;  // lm_eval.utils.apply_template's environment
      options.trim_blocks = options.lstrip_blocks = false;
      options.keep_trailing_newline = true;
      options.strict_undefined = true;
      it = templates_->compiled.emplace(source, text::jinja::Template(source, options)).first;
    }
    return it->second.render(doc).text;
  } catch (const text::jinja::TemplateError& e) {
    std::string why = e.what();
    if (why.rfind("chat template ", 0) == 0) why = why.substr(14);
    throw FormatError(where(key, doc_id), "template " + why);
  }
}

Value TaskPrompts::doc_to_text(const Value& doc, size_t doc_id) const {
  const Value& field = task_.doc_to_text;
  if (field.kind() == Value::Kind::kInt) return field;
  if (is_feature(field.as_string())) return doc.get(field.as_string());
  const std::string s = render_template(field.as_string(), doc, doc_id, "doc_to_text");
  if (is_digits(s) && !task_.doc_to_choice.is_undefined() && s.size() < 19) return Value(static_cast<int64_t>(std::stoll(s)));
  return Value(s);
}

Value TaskPrompts::doc_to_target(const Value& doc, size_t doc_id) const {
  const Value& field = task_.doc_to_target;
  if (field.kind() == Value::Kind::kInt || field.is_array()) return field;
  if (is_feature(field.as_string())) return doc.get(field.as_string());
  const std::string s = render_template(field.as_string(), doc, doc_id, "doc_to_target");
  if (is_digits(s) && !task_.doc_to_choice.is_undefined() && s.size() < 19) return Value(static_cast<int64_t>(std::stoll(s)));
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') {
    try {
      return detail::python_literal_eval(s);
    } catch (const std::invalid_argument&) {
    }
  }
  return Value(s);
}

std::vector<std::string> TaskPrompts::doc_to_choice(const Value& doc, size_t doc_id) const {
  const Value& field = task_.doc_to_choice;
  Value list;
  if (field.is_array()) list = field;
  else if (field.is_object()) {
    text::jinja::Array values;
    for (const auto& kv : field.as_object()) values.push_back(kv.second);
    list = Value(values);
  } else if (field.is_string()) {
    if (is_feature(field.as_string())) {
      list = doc.get(field.as_string());
    } else {
      const std::string rendered = render_template(field.as_string(), doc, doc_id, "doc_to_choice");
      try {
        list = detail::python_literal_eval(rendered);
      } catch (const std::invalid_argument& e) {
        throw FormatError(where("doc_to_choice", doc_id), std::string("rendered text is ") + e.what());
      }
    }
  } else {
    throw FormatError(where("doc_to_choice", doc_id), "must be a feature name, a template, a list or a mapping");
  }
  if (!list.is_array()) throw FormatError(where("doc_to_choice", doc_id), "does not give a list of choices");
  std::vector<std::string> choices;
  for (const auto& c : list.as_array()) {
    if (!c.is_string()) throw FormatError(where("doc_to_choice", doc_id), "choice " + std::to_string(choices.size()) + " is not a string: " + c.str());
    choices.push_back(c.as_string());
  }
  if (choices.empty()) throw FormatError(where("doc_to_choice", doc_id), "gives no choices");
  return choices;
}

std::string TaskPrompts::choice_delimiter() const {
  if (!chat_) return task_.target_delimiter;
  return task_.gen_prefix && !task_.gen_prefix->empty() && !ends_with_python_space(*task_.gen_prefix) ? task_.target_delimiter : "";
}

std::string TaskPrompts::context(const Value& doc, size_t doc_id) {
  // Task.resolve_field: the document's field of that name, else the text as a template over it.
  const auto resolve = [&](const std::optional<std::string>& field, const Value& of, const char* key) -> std::string {
    if (!field || field->empty()) return "";
    if (!of.get(*field).is_undefined()) return of.get(*field).str();
    return render_template(*field, of, doc_id, key);
  };
  std::vector<Message> messages;
  const std::string description = resolve(task_.description, doc, "description");
  if (!description.empty()) messages.push_back({"system", description, ""});

  // build_qa_turn
  const auto qa_turn = [&](const Value& q, const std::vector<std::string>* choices, const Value* a, const std::string& gen_prefix,
                           const std::string& target_delimiter, const std::string& fewshot_delimiter, size_t id) {
    if (!q.is_string())
      throw FormatError(where("doc_to_text", id), "gives " + q.str() + ", not a string (tasks with several inputs per document are not supported)");
    const bool has_answer = a && !a->is_none() && !(a->is_string() && a->as_string().empty());
    const bool delimit_prefix = !gen_prefix.empty() && !q.as_string().empty() && !(ends_with_python_space(q.as_string()) || starts_with_python_space(gen_prefix));
    messages.push_back({"user", q.as_string(), (has_answer && gen_prefix.empty()) || delimit_prefix ? target_delimiter : ""});
    if (has_answer) {
      std::string answer;
      if (choices && (a->kind() == Value::Kind::kInt || a->kind() == Value::Kind::kBool)) {
        const int64_t k = a->as_int();
        if (k < 0 || k >= static_cast<int64_t>(choices->size()))
          throw FormatError(where("doc_to_target", id), "few-shot answer index " + std::to_string(k) + " is outside the " +
                                                            std::to_string(choices->size()) + " choices");
        answer = (*choices)[static_cast<size_t>(k)];
      } else if (a->is_array()) {
        if (a->as_array().empty() || !a->as_array()[0].is_string()) throw FormatError(where("doc_to_target", id), "few-shot answer list must hold strings");
        answer = a->as_array()[0].as_string();
      } else if (a->is_string()) {
        answer = a->as_string();
      } else {
        throw FormatError(where("doc_to_target", id), "few-shot answer " + a->str() + " is not a string");
      }
      messages.push_back({"assistant", maybe_delimit(gen_prefix, answer, " "), fewshot_delimiter});
    } else if (!gen_prefix.empty()) {
      messages.push_back({"assistant", gen_prefix, ""});
    }
  };

  if (task_.num_fewshot > 0) {
    const size_t n = static_cast<size_t>(task_.num_fewshot);
    const bool exclude = task_.fewshot_split == task_.test_split;  // lm-eval: None == None too
    std::vector<Value> shots;
    if (task_.fewshot_sampler == "first_n") {
      for (const auto& d : fewshot_docs_)
        if (!exclude || !same_doc(d, doc)) shots.push_back(d);
      if (shots.size() < n)
        throw FormatError(where("num_fewshot", doc_id), std::to_string(n) + " few-shot examples asked, " + std::to_string(shots.size()) + " available");
      shots.resize(n);
    } else {
      const size_t draw = exclude ? n + 1 : n;
      if (draw > fewshot_docs_.size())
        throw FormatError(where("num_fewshot", doc_id), std::to_string(draw) + " few-shot examples to draw (num_fewshot" +
                                                            (exclude ? " + 1, the evaluated document is left out" : std::string()) +
                                                            ") but the few-shot split has " + std::to_string(fewshot_docs_.size()));
      for (size_t i : rnd_.sample(fewshot_docs_.size(), draw))
        if (!exclude || !same_doc(fewshot_docs_[i], doc)) shots.push_back(fewshot_docs_[i]);
      if (shots.size() > n) shots.resize(n);
      if (shots.size() < n) {  // duplicates of the document were drawn: draw again without them
        std::vector<Value> pool;
        for (const auto& d : fewshot_docs_)
          if (!same_doc(d, doc)) pool.push_back(d);
        if (pool.size() < n) throw FormatError(where("num_fewshot", doc_id), "not enough few-shot documents besides this one");
        shots.clear();
        for (size_t i : rnd_.sample(pool.size(), n)) shots.push_back(pool[i]);
      }
    }
    for (const auto& shot : shots) {
      const Value q = doc_to_text(shot, doc_id);
      std::vector<std::string> choices;
      if (!task_.doc_to_choice.is_undefined()) choices = doc_to_choice(shot, doc_id);
      const Value a = doc_to_target(shot, doc_id);
      qa_turn(q, task_.doc_to_choice.is_undefined() ? nullptr : &choices, &a, resolve(task_.gen_prefix, shot, "gen_prefix"),
              task_.target_delimiter, task_.fewshot_delimiter, doc_id);
    }
  }
  const std::string gen_prefix = resolve(task_.gen_prefix, doc, "gen_prefix");
  qa_turn(doc_to_text(doc, doc_id), nullptr, nullptr, gen_prefix, task_.target_delimiter, "", doc_id);

  if (!chat_) {
    std::string text;
    for (const auto& m : messages) text += m.to_text();
    return text;
  }
  std::vector<text::ChatMessage> chat;
  if (fewshot_as_multiturn_) {
    for (const auto& m : messages) chat.push_back({m.role, m.content});
  } else {  // multiturn_to_singleturn
    size_t begin = 0;
    if (messages[0].role == "system") {
      chat.push_back({"system", messages[0].content});
      begin = 1;
    }
    const bool ends_with_assistant = messages.back().role == "assistant";
    const size_t user_end = ends_with_assistant ? messages.size() - 1 : messages.size();
    messages[user_end - 1].delimiter = "";
    std::string user;
    for (size_t i = begin; i < user_end; ++i) user += messages[i].to_text();
    chat.push_back({"user", user});
    if (ends_with_assistant) chat.push_back({"assistant", messages.back().content});
  }
  return chat_(chat, gen_prefix.empty());
}

ChatFormatter chat_formatter(const text::ChatTemplate& chat_template) {
  return [chat_template](const std::vector<text::ChatMessage>& messages, bool add_generation_prompt) {
    text::ChatRenderOptions options;
    options.add_generation_prompt = add_generation_prompt;
    std::string rendered;
    try {
      rendered = chat_template.render(messages, options).text;
    } catch (const text::jinja::TemplateError&) {
      // As HFLM.apply_chat_template: a template that refuses the system role gets the chat without it.
      std::vector<text::ChatMessage> without_system;
      for (const auto& m : messages)
        if (m.role != "system") without_system.push_back(m);
      if (without_system.size() == messages.size()) throw;
      rendered = chat_template.render(without_system, options).text;
    }
    if (add_generation_prompt || messages.empty()) return rendered;
    // continue_final_message (transformers' apply_chat_template).
    const std::string& final_message = messages.back().content;
    const std::string stripped = text::python_strip(final_message), lstripped = text::python_strip(final_message, true, false);
    const size_t at = rendered.rfind(stripped);
    if (at == std::string::npos) throw FormatError("chat template", "the final message does not appear in the rendered chat (continue_final_message)");
    rendered.resize(rendered.compare(at, lstripped.size(), lstripped) == 0 ? at + lstripped.size() : at + stripped.size());
    return rendered;
  };
}

}  // namespace edgerazor::eval
