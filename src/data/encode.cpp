// Text / JSONL -> shard documents with label masks.
#include "edgerazor/data/encode.h"

#include <nlohmann/json.hpp>

#include "edgerazor/core/error.h"
#include "edgerazor/core/json_records.h"

namespace edgerazor::data {
namespace {

bool blank(const std::string& s, size_t b, size_t e) {
  for (size_t i = b; i < e; ++i)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return false;
  return true;
}

// Strips whitespace-only lines (and trailing whitespace of the last line) at both ends.
std::string strip_lines(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n\f\v");
  if (b == std::string::npos) return "";
  const size_t line_start = s.rfind('\n', b);
  const size_t from = line_start == std::string::npos ? 0 : line_start + 1;
  const size_t e = s.find_last_not_of(" \t\r\n\f\v");
  return s.substr(from, e + 1 - from);
}

void push(std::vector<std::string>& out, const std::string& doc) {
  std::string d = strip_lines(doc);
  if (!d.empty()) out.push_back(std::move(d));
}

struct Place {
  const std::string& source;
  uint64_t line, offset;
  [[noreturn]] void fail(const std::string& msg) const {
    throw FormatError(source, offset, "line " + std::to_string(line) + ": " + msg);
  }
};

std::string string_field(const nlohmann::json& j, const char* key, const Place& at) {
  const auto it = j.find(key);
  if (!it->is_string()) at.fail("'" + std::string(key) + "' must be a string, got " + std::string(it->type_name()));
  return it->get<std::string>();
}

void append(EncodedDocument& d, const std::vector<int32_t>& ids, uint8_t label) {
  d.ids.insert(d.ids.end(), ids.begin(), ids.end());
  d.labels.insert(d.labels.end(), ids.size(), label);
}

void finish(EncodedDocument& d, const text::Tokenizer& tok, const EncodeOptions& o) {
  if (o.eos) {
    d.ids.push_back(resolve_eos_id(tok, o));
    d.labels.push_back(1);
  }
}

void begin(EncodedDocument& d, const text::Tokenizer& tok, const EncodeOptions& o) {
  if (!o.bos) return;
  const auto bos = tok.bos_id();
  if (!bos) throw ConfigError("", 0, 0, "--bos", "the tokenizer has no BOS token");
  d.ids.push_back(*bos);
  d.labels.push_back(0);
}

// A token that decodes to whitespace only ("\n" after a chat turn).
bool is_blank_token(const text::Tokenizer& tok, int32_t id) {
  const std::string piece = tok.decode({id});
  return !piece.empty() && piece.find_first_not_of(" \t\r\n\f\v") == std::string::npos;
}

void count(EncodeStats& s, const EncodedDocument& d) {
  if (d.ids.empty()) return;
  s.documents += 1;
  s.tokens += d.ids.size();
  for (uint8_t l : d.labels) s.label_tokens += l != 0;
}

}  // namespace

DocumentSplit parse_document_split(const std::string& name, const std::string& key) {
  if (name == "none") return DocumentSplit::kNone;
  if (name == "line") return DocumentSplit::kLine;
  if (name == "blank-line") return DocumentSplit::kBlankLine;
  if (name == "separator") return DocumentSplit::kSeparator;
  if (name == "auto") return DocumentSplit::kAuto;
  throw ConfigError("", 0, 0, key, "must be none, line, blank-line, separator or auto (got '" + name + "')");
}

std::vector<std::string> split_documents(const std::string& text, DocumentSplit split, const std::string& separator) {
  std::vector<std::string> out;
  if (split == DocumentSplit::kAuto)
    split = !separator.empty() && text.find(separator) != std::string::npos ? DocumentSplit::kSeparator : DocumentSplit::kBlankLine;
  switch (split) {
    case DocumentSplit::kNone:
      if (!text.empty()) out.push_back(text);
      break;
    case DocumentSplit::kSeparator: {
      if (separator.empty()) throw ConfigError("", 0, 0, "--separator", "must not be empty");
      size_t at = 0;
      for (size_t next; (next = text.find(separator, at)) != std::string::npos; at = next + separator.size())
        push(out, text.substr(at, next - at));
      push(out, text.substr(at));
      break;
    }
    case DocumentSplit::kLine:
    case DocumentSplit::kBlankLine: {
      size_t doc_start = 0, at = 0;
      bool in_doc = false;
      while (at <= text.size()) {
        size_t eol = text.find('\n', at);
        if (eol == std::string::npos) eol = text.size();
        const bool is_blank = blank(text, at, eol);
        if (split == DocumentSplit::kLine) {
          if (!is_blank) push(out, text.substr(at, eol - at));
        } else if (is_blank) {
          if (in_doc) push(out, text.substr(doc_start, at - doc_start));
          in_doc = false;
        } else if (!in_doc) {
          doc_start = at;
          in_doc = true;
        }
        at = eol + 1;
      }
      if (in_doc) push(out, text.substr(doc_start));
      break;
    }
    case DocumentSplit::kAuto:
      break;
  }
  return out;
}

int32_t resolve_eos_id(const text::Tokenizer& tokenizer, const EncodeOptions& o) {
  if (o.eos_id >= 0) {
    if (o.eos_id >= tokenizer.vocab_size())
      throw ConfigError("", 0, 0, "--eos-id", std::to_string(o.eos_id) + " is outside the vocabulary (" +
                                                  std::to_string(tokenizer.vocab_size()) + ")");
    return o.eos_id;
  }
  const auto eos = tokenizer.eos_id();
  if (!eos) throw ConfigError("", 0, 0, "--eos-id", "the tokenizer defines no EOS token; give --eos-id or --no-eos");
  return *eos;
}

EncodedDocument encode_text_document(const text::Tokenizer& tokenizer, const std::string& text, const EncodeOptions& o) {
  EncodedDocument d;
  begin(d, tokenizer, o);
  if (!d.labels.empty()) d.labels[0] = 1;  // plain text: every token is labelled (HF labels = input_ids)
  append(d, tokenizer.encode(text), 1);
  finish(d, tokenizer, o);
  return d;
}

PromptFormat parse_prompt_format(const std::string& name, const std::string& key) {
  if (name == "auto") return PromptFormat::kAuto;
  if (name == "chat") return PromptFormat::kChat;
  if (name == "plain") return PromptFormat::kPlain;
  throw ConfigError("", 0, 0, key, "'" + name + "' is not a prompt format (expected auto, chat or plain)");
}

namespace {

// A conversation through the chat template; labels on the assistant turns (with the tokens the
// template closes them with). The template ends every turn itself (Qwen: "<|im_end|>\n"), so the
// EOS is appended only when the conversation does not already end with it (whitespace aside).
void encode_chat_document(EncodedDocument& d, const text::Tokenizer& tokenizer, std::vector<text::ChatMessage> messages,
                          const EncodeOptions& o, const Place& at) {
  bool has_assistant = false;
  for (const auto& msg : messages) has_assistant |= msg.role == "assistant";
  if (!has_assistant) at.fail("the conversation has no assistant message (nothing to train on)");
  if (!o.system_prompt.empty() && messages.front().role != "system")
    messages.insert(messages.begin(), text::ChatMessage{"system", o.system_prompt});
  text::TokenizedChat chat;
  try {
    chat = text::tokenize_chat(tokenizer, text::render_chat(*o.chat_template, messages, false));
  } catch (const text::jinja::TemplateError& e) {
    at.fail(std::string("chat template: ") + e.what());
  }
  d.ids = std::move(chat.ids);
  d.labels.resize(d.ids.size());
  for (size_t i = 0; i < d.ids.size(); ++i) d.labels[i] = chat.labels[i] != text::kIgnoreLabel;
  if (o.eos) {
    const int32_t eos = resolve_eos_id(tokenizer, o);
    size_t last = d.ids.size();
    while (last > 0 && is_blank_token(tokenizer, d.ids[last - 1])) --last;
    if (last > 0 && d.ids[last - 1] == eos) return;  // the template closed the conversation with EOS
  }
  finish(d, tokenizer, o);
}

}  // namespace

EncodedDocument encode_jsonl_record(const text::Tokenizer& tokenizer, const std::string& json, const EncodeOptions& o,
                                    const std::string& source, uint64_t line, uint64_t byte_offset, EncodeStats* stats) {
  const Place at{source, line, byte_offset};
  nlohmann::json j;
  try {
    j = json_records::parse(json);
  } catch (const nlohmann::json::parse_error& e) {
    at.fail(std::string("not valid JSON: ") + e.what());
  } catch (const nlohmann::json::out_of_range& e) {  // a number too large for a double
    at.fail(std::string("not valid JSON: ") + e.what());
  } catch (const json_records::DuplicateKey& e) {
    at.fail(e.what());
  }
  if (!j.is_object()) at.fail("expected a JSON object, got " + std::string(j.type_name()));
  EncodedDocument d;
  if (j.contains("messages")) {
    const auto& m = j["messages"];
    if (!m.is_array() || m.empty()) at.fail("'messages' must be a non-empty array of {role, content}");
    if (!o.chat_template) at.fail("chat 'messages' need a chat template, and the tokenizer has none");
    std::vector<text::ChatMessage> messages;
    for (size_t i = 0; i < m.size(); ++i) {
      const auto& e = m[i];
      const std::string k = "messages[" + std::to_string(i) + "]";
      if (!e.is_object() || !e.contains("role") || !e["role"].is_string())
        at.fail(k + ": expected an object with a string 'role'");
      const auto c = e.find("content");
      if (c == e.end() || !(c->is_string() || c->is_null())) at.fail(k + ": 'content' must be a string");
      messages.push_back({e["role"].get<std::string>(), c->is_string() ? c->get<std::string>() : std::string()});
    }
    encode_chat_document(d, tokenizer, messages, o, at);
    if (stats) stats->chat_records++;
  } else if (j.contains("prompt")) {
    const char* rkey = j.contains("response") ? "response" : j.contains("completion") ? "completion" : nullptr;
    if (!rkey) at.fail("a 'prompt' record needs a 'response' (or 'completion')");
    const std::string prompt = string_field(j, "prompt", at), response = string_field(j, rkey, at);
    PromptFormat format = o.prompt_format;
    if (format == PromptFormat::kAuto) format = o.chat_template ? PromptFormat::kChat : PromptFormat::kPlain;
    if (format == PromptFormat::kChat) {
      if (!o.chat_template) at.fail("--prompt-format chat needs a chat template, and the tokenizer has none");
      encode_chat_document(d, tokenizer, {{"user", prompt}, {"assistant", response}}, o, at);
    } else {
      begin(d, tokenizer, o);
      append(d, tokenizer.encode(prompt + o.prompt_separator), 0);
      append(d, tokenizer.encode(response), 1);
      finish(d, tokenizer, o);
    }
    if (stats) stats->prompt_records++;
  } else if (j.contains("text")) {
    d = encode_text_document(tokenizer, string_field(j, "text", at), o);
    if (stats) stats->text_records++;
  } else {
    at.fail("expected a \"text\", \"prompt\"/\"response\" or \"messages\" field");
  }
  return d;
}

EncodeStats encode_text(const text::Tokenizer& tokenizer, const std::string& text, DocumentSplit split,
                        const std::string& separator, const EncodeOptions& o, ShardWriter& writer) {
  EncodeStats s;
  for (const std::string& doc : split_documents(text, split, separator)) {
    const EncodedDocument d = encode_text_document(tokenizer, doc, o);
    writer.add_document(d.ids);
    count(s, d);
  }
  return s;
}

EncodeStats encode_jsonl(const text::Tokenizer& tokenizer, std::istream& in, const std::string& source,
                         const EncodeOptions& o, ShardWriter& writer) {
  EncodeStats s;
  std::string line;
  uint64_t number = 0, offset = 0;
  while (std::getline(in, line)) {
    ++number;
    const uint64_t here = offset;
    offset += line.size() + 1;
    if (blank(line, 0, line.size())) continue;
    const EncodedDocument d = encode_jsonl_record(tokenizer, line, o, source, number, here, &s);
    writer.add_document(d.ids, d.labels);
    count(s, d);
  }
  if (in.bad()) throw FormatError(source, offset, "read failed");
  return s;
}

}  // namespace edgerazor::data
