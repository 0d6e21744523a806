// The prompts of a task, built as lm-evaluation-harness 0.4 builds them (ConfigurableTask):
// doc_to_text / doc_to_target / doc_to_choice (a feature name, else a Jinja template rendered
// with the document's fields, with lm-eval's digit and literal conversions), the description,
// few-shot examples drawn with Python's random.Random(seed).sample, delimiters, gen_prefix, and
// optionally a chat template over the resulting messages. Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "edgerazor/eval/python_random.h"
#include "edgerazor/eval/task_config.h"
#include "edgerazor/text/chat_template.h"

namespace edgerazor::eval {

// Renders chat messages to the model's prompt text (add_generation_prompt, or continuing the
// final assistant message when false), as transformers' apply_chat_template(tokenize=False).
using ChatFormatter = std::function<std::string(const std::vector<text::ChatMessage>&, bool add_generation_prompt)>;

// A model's chat template as lm-eval applies it (HFLM.apply_chat_template):
// add_generation_prompt, or continue_final_message (the text cut after the last message's
// content, as transformers does) when a gen_prefix opens the reply.
ChatFormatter chat_formatter(const text::ChatTemplate& chat_template);

class TaskPrompts {
 public:
  // fewshot_seed: lm-eval's --fewshot_seed (1234 by default). chat: null for plain text prompts.
  TaskPrompts(const TaskConfig& task, const TaskData& data, uint64_t fewshot_seed, ChatFormatter chat = nullptr,
              bool fewshot_as_multiturn = false);
  ~TaskPrompts();

  const std::string& eval_split() const { return eval_split_; }
  const std::vector<Value>& eval_docs() const;

  // Each returns an int, a string or a list, as lm-eval's do; errors name the task file, the
  // key and the document.
  Value doc_to_text(const Value& doc, size_t doc_id) const;
  Value doc_to_target(const Value& doc, size_t doc_id) const;
  std::vector<std::string> doc_to_choice(const Value& doc, size_t doc_id) const;
  // The prompt of one evaluation document (few-shot examples drawn now: call in document order).
  std::string context(const Value& doc, size_t doc_id);
  // The text between context and continuation for multiple choice (target_delimiter, or "" under
  // a chat template unless gen_prefix asks for one).
  std::string choice_delimiter() const;
  bool uses_chat_template() const { return static_cast<bool>(chat_); }
  // "task.yaml: KEY, document N of split 'S'": where an error about a document is.
  std::string where(const char* key, size_t doc_id) const;

 private:
  bool is_feature(const std::string& name) const;
  std::string render_template(const std::string& source, const Value& doc, size_t doc_id, const char* key) const;

  const TaskConfig& task_;
  const TaskData& data_;
  std::string eval_split_;
  std::vector<Value> fewshot_docs_;
  PythonRandom rnd_;
  ChatFormatter chat_;
  bool fewshot_as_multiturn_ = false;
  struct Templates;
  std::unique_ptr<Templates> templates_;
};

}  // namespace edgerazor::eval
