// Chat rendering with a model's Jinja template, assistant spans, and ids + labels.
#include "edgerazor/text/chat_template.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "edgerazor/core/error.h"
#include "edgerazor/text/bpe_tokenizer.h"

namespace edgerazor::text {
namespace {

bool read_file(const std::string& path, std::string& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream buffer;
  buffer << in.rdbuf();
  out = buffer.str();
  return true;
}

std::string token_name(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return "";
}

std::string strip(const std::string& s, const char* chars) {
  const size_t b = s.find_first_not_of(chars);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(chars) - b + 1);
}

// Ways a template may print a message's content, most literal first.
std::vector<std::string> content_candidates(const std::string& content) {
  std::vector<std::string> out{content, strip(content, " \t\r\n\f\v")};
  const size_t think = content.rfind("</think>");
  if (think != std::string::npos) {
    std::string after = content.substr(think + 8);
    after.erase(0, after.find_first_not_of('\n') == std::string::npos ? after.size() : after.find_first_not_of('\n'));
    out.push_back(after);
    out.push_back(strip(after, " \t\r\n\f\v"));
  }
  out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());
  return out;
}

}  // namespace

ChatTemplate::ChatTemplate(std::string source, std::string bos_token, std::string eos_token)
    : source_(std::move(source)),
      bos_token_(std::move(bos_token)),
      eos_token_(std::move(eos_token)),
      compiled_(std::make_shared<jinja::Template>(source_)) {}

ChatTemplate ChatTemplate::from_model_dir(const std::string& model_dir) {
  std::optional<ChatTemplate> found = find_in_model_dir(model_dir);
  if (!found)
    throw FormatError(model_dir + "/tokenizer_config.json",
                      "chat_template: this model folder has no chat template (tokenizer_config.json "
                      "chat_template or chat_template.jinja)");
  return std::move(*found);
}

std::optional<ChatTemplate> ChatTemplate::find_in_model_dir(const std::string& model_dir) {
  const std::string config_path = model_dir + "/tokenizer_config.json";
  nlohmann::json config = nlohmann::json::object();
  std::string text;
  if (read_file(config_path, text)) {
    try {
      config = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw FormatError(config_path, e.byte > 0 ? e.byte - 1 : 0, std::string("invalid JSON: ") + e.what());
    } catch (const nlohmann::json::out_of_range& e) {  // a number too large for a double
      throw FormatError(config_path, std::string("invalid JSON: ") + e.what());
    }
  }
  std::string source;
  if (!read_file(model_dir + "/chat_template.jinja", source)) {
    auto it = config.find("chat_template");
    if (it != config.end() && it->is_string()) {
      source = it->get<std::string>();
    } else if (it != config.end() && it->is_array()) {
      for (const auto& t : *it)
        if (t.is_object() && t.contains("name") && t["name"] == "default" && t.contains("template") &&
            t["template"].is_string())
          source = t["template"].get<std::string>();
    }
  }
  if (source.empty()) return std::nullopt;
  ChatTemplate result(source, token_name(config, "bos_token"), token_name(config, "eos_token"));
  result.pad_token_ = token_name(config, "pad_token");
  result.unk_token_ = token_name(config, "unk_token");
  return result;
}

jinja::RenderResult ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                         const ChatRenderOptions& options) const {
  jinja::Array list;
  for (const ChatMessage& m : messages)
    list.push_back(jinja::Value(jinja::Object{{"role", jinja::Value(m.role)}, {"content", jinja::Value(m.content)}}));
  jinja::Object context{{"messages", jinja::Value(std::move(list))},
                        {"tools", jinja::Value::none()},
                        {"documents", jinja::Value::none()},
                        {"add_generation_prompt", jinja::Value(options.add_generation_prompt)}};
  const std::pair<const char*, const std::string*> names[] = {
      {"bos_token", &bos_token_}, {"eos_token", &eos_token_}, {"pad_token", &pad_token_}, {"unk_token", &unk_token_}};
  for (const auto& [key, value] : names)
    if (!value->empty()) context.emplace_back(key, jinja::Value(*value));
  for (const auto& kv : options.variables) {
    auto it = std::find_if(context.begin(), context.end(), [&](const auto& c) { return c.first == kv.first; });
    if (it != context.end()) it->second = kv.second;
    else context.push_back(kv);
  }
  return compiled_->render(jinja::Value(std::move(context)));
}

RenderedChat render_chat(const ChatTemplate& chat_template, const std::vector<ChatMessage>& messages,
                         bool add_generation_prompt) {
  ChatRenderOptions options;
  options.add_generation_prompt = add_generation_prompt;
  return render_chat(chat_template, messages, options);
}

RenderedChat render_chat(const ChatTemplate& chat_template, const std::vector<ChatMessage>& messages,
                         const ChatRenderOptions& options) {
  jinja::RenderResult rendered = chat_template.render(messages, options);
  RenderedChat chat;
  chat.text = std::move(rendered.text);
  if (chat_template.has_generation_blocks()) {
    for (const auto& [begin, end] : rendered.generation_spans)
      if (end > begin) chat.assistant_spans.push_back(TextSpan{begin, end});
    return chat;
  }
  const std::string& text = chat.text;
  const std::string& eos = chat_template.eos_token();
  size_t cursor = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    const bool assistant = messages[i].role == "assistant";
    size_t found = std::string::npos, length = 0;
    const std::vector<std::string> candidates = content_candidates(messages[i].content);
    // An assistant reply is looked for with its end-of-turn token first, so that a short reply
    // ("a", "Yes") is not found inside template scaffolding such as "assistant".
    if (assistant && !eos.empty()) {
      for (const std::string& candidate : candidates) {
        for (const char* gap : {"", " "}) {
          found = text.find(candidate + gap + eos, cursor);
          if (found != std::string::npos) break;
        }
        if (found != std::string::npos) {
          length = candidate.size();
          break;
        }
      }
    }
    for (size_t k = 0; found == std::string::npos && k < candidates.size(); ++k) {
      found = text.find(candidates[k], cursor);
      length = candidates[k].size();
    }
    if (found == std::string::npos) {
      if (assistant && !candidates.empty())
        throw jinja::TemplateError("chat template: the content of assistant message " + std::to_string(i) +
                                   " does not appear in the rendered text, so its loss mask is unknown");
      continue;
    }
    size_t end = found + length;
    if (assistant && !eos.empty()) {
      size_t k = end;
      while (k < text.size() && (text[k] == ' ' || text[k] == '\t')) ++k;
      if (text.compare(k, eos.size(), eos) == 0) end = k + eos.size();
    }
    if (assistant) {
      // Leading newlines of a reply sit next to template newlines ("</think>\n\n"); leave them out.
      size_t begin = found;
      while (begin < end && (text[begin] == '\n' || text[begin] == '\r')) ++begin;
      chat.assistant_spans.push_back(TextSpan{begin, end});
    }
    cursor = end;
  }
  return chat;
}

TokenizedChat tokenize_chat(const Tokenizer& tokenizer, const RenderedChat& chat) {
  TokenizedChat out;
  const auto labelled = [&](size_t begin, size_t end) {
    for (const TextSpan& s : chat.assistant_spans)
      if (std::max(begin, s.begin) < std::min(end, s.end)) return true;
    return false;
  };
  if (const auto* bpe = dynamic_cast<const BpeTokenizer*>(&tokenizer)) {
    std::vector<ByteSpan> offsets;
    out.ids = bpe->encode_with_offsets(chat.text, offsets);
    out.labels.resize(out.ids.size());
    for (size_t k = 0; k < out.ids.size(); ++k)
      out.labels[k] = labelled(offsets[k].begin, offsets[k].end) ? out.ids[k] : kIgnoreLabel;
    return out;
  }
  size_t cursor = 0;
  const auto append = [&](size_t begin, size_t end, bool label) {
    if (end <= begin) return;
    for (int32_t id : tokenizer.encode(chat.text.substr(begin, end - begin))) {
      out.ids.push_back(id);
      out.labels.push_back(label ? id : kIgnoreLabel);
    }
  };
  for (const TextSpan& s : chat.assistant_spans) {
    append(cursor, s.begin, false);
    append(s.begin, s.end, true);
    cursor = s.end;
  }
  append(cursor, chat.text.size(), false);
  return out;
}

std::vector<ChatMessage> chat_messages_from_json(const std::string& json_array_text) {
  const jinja::Value v = jinja::Value::from_json(json_array_text);
  if (!v.is_array()) throw jinja::TemplateError("chat messages: expected a JSON array of {role, content}");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < v.as_array().size(); ++i) {
    const jinja::Value& m = v.as_array()[i];
    const jinja::Value role = m.get("role"), content = m.get("content");
    if (!role.is_string() || !(content.is_string() || content.is_none()))
      throw jinja::TemplateError("chat messages[" + std::to_string(i) + "]: expected string role and content");
    out.push_back(ChatMessage{role.as_string(), content.is_string() ? content.as_string() : std::string()});
  }
  return out;
}

}  // namespace edgerazor::text
