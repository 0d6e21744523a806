// Implements: chat rendering with a model's own Jinja chat_template (Qwen/ChatML, Llama 2/3 and
// anything else the interpreter in chat_template_jinja.h handles), the byte spans of assistant
// replies in the rendered text, and tokenization into ids + labels for loss masks (only
// assistant tokens carry labels).
//
// Assistant spans: when the template has {% generation %} blocks, exactly their output (as
// transformers' return_assistant_tokens_mask). Otherwise each message's content is located in
// the rendered text in conversation order, trying it as written (so a <think> block the message
// carries and the template prints is labelled with the reply), stripped, then, for Qwen3-style
// templates, the part after </think>; an assistant span covers that content plus the
// end-of-turn eos_token right after it (spaces between allowed), less leading newlines.
// Template scaffolding such as "<|im_start|>assistant\n" and Qwen3's empty
// "<think>\n\n</think>\n\n" is not labelled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/text/chat_template_jinja.h"
#include "edgerazor/text/tokenizer.h"

namespace edgerazor::text {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool", ...
  std::string content;
};

struct ChatRenderOptions {
  bool add_generation_prompt = false;
  // Extra template variables, e.g. {"enable_thinking", false} for Qwen3, {"date_string", ...}.
  jinja::Kwargs variables;
};

class ChatTemplate {
 public:
  // Parses `source` once (TemplateError on syntax errors). bos/eos are the token strings the
  // template sees as bos_token/eos_token ("" = undefined).
  explicit ChatTemplate(std::string source, std::string bos_token = "", std::string eos_token = "");
  // From a model folder: chat_template.jinja when present, else tokenizer_config.json's
  // chat_template (string or the "default" entry of a list); bos/eos/pad/unk names from
  // tokenizer_config.json. FormatError naming the file when there is no template.
  static ChatTemplate from_model_dir(const std::string& model_dir);
  // The same, or nullopt when the folder has no template (a malformed file still throws).
  static std::optional<ChatTemplate> find_in_model_dir(const std::string& model_dir);

  const std::string& source() const { return source_; }
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }
  // Renders with the context transformers' apply_chat_template builds (messages, tools=None,
  // documents=None, add_generation_prompt, special token names) plus options.variables.
  jinja::RenderResult render(const std::vector<ChatMessage>& messages, const ChatRenderOptions& options) const;
  bool has_generation_blocks() const { return compiled_->has_generation_blocks(); }

 private:
  std::string source_, bos_token_, eos_token_, pad_token_, unk_token_;
  std::shared_ptr<const jinja::Template> compiled_;
};

// A byte range [begin, end) of RenderedChat::text.
struct TextSpan {
  size_t begin = 0;
  size_t end = 0;
};

struct RenderedChat {
  std::string text;
  std::vector<TextSpan> assistant_spans;  // in order, non-overlapping
};

RenderedChat render_chat(const ChatTemplate& chat_template, const std::vector<ChatMessage>& messages,
                         bool add_generation_prompt);
RenderedChat render_chat(const ChatTemplate& chat_template, const std::vector<ChatMessage>& messages,
                         const ChatRenderOptions& options);

inline constexpr int32_t kIgnoreLabel = -100;

struct TokenizedChat {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;  // ids[i] where token i overlaps an assistant span, else kIgnoreLabel
};

// Encodes the whole rendered text at once (special-token strings in it become their ids; no
// BOS is added: templates write bos_token themselves). With a BpeTokenizer the labels come from
// token byte offsets, so ids equal tokenizer.encode(chat.text). Other tokenizers encode the
// text span by span.
TokenizedChat tokenize_chat(const Tokenizer& tokenizer, const RenderedChat& chat);

// [{"role": ..., "content": ...}, ...] (JSON text) -> messages; FormatError-free: throws
// jinja::TemplateError naming the bad element.
std::vector<ChatMessage> chat_messages_from_json(const std::string& json_array_text);

}  // namespace edgerazor::text
