// Chat templates against transformers' own Jinja environment (the one apply_chat_template compiles
// templates in; run by tests/reference/hf_reference.py): the real Qwen3 template and the Llama 2,
// Llama 3 and Llama 3.2 templates, plus other templates from the Hub, over many conversations,
// compared byte for byte. A case where the reference raises must raise here too.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "edgerazor/data/encode.h"
#include "edgerazor/text/chat_template.h"
#include "edgerazor/text/tokenizer.h"
#include "fixtures/python_reference.h"
#include "fixtures/test_paths.h"

namespace edgerazor::text {
namespace {

using Json = nlohmann::json;

const std::string kQwenDir = std::string(EDGERAZOR_SHARED_DATA_DIR) + "/models/qwen3-tokenizer";
const std::string kTemplates = std::string(EDGERAZOR_SOURCE_DIR) + "/tests/text/reference/templates";

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Json conversation(std::initializer_list<std::pair<const char*, const char*>> turns) {
  Json messages = Json::array();
  for (const auto& [role, content] : turns) messages.push_back({{"role", role}, {"content", content}});
  return messages;
}

std::vector<Json> conversations() {
  return {
      conversation({{"user", "Hi"}, {"assistant", "Hello!"}}),
      conversation({{"system", "You are a pirate."}, {"user", "Hello, how are you?"},
                    {"assistant", "Arr, fine."}, {"user", "Tell me a joke."}}),
      conversation({{"user", "What is 2+2?"}, {"assistant", "<think>\nEasy.\n</think>\n\n4"}, {"user", "And 3+3?"},
                    {"assistant", "<think>\n3+3 is 6.\n</think>\n\n6"}}),
      conversation({{"user", "  spaced \n\n"}, {"assistant", "\n\nreply with\ttabs  \n"}}),
      conversation({{"system", "Système: répondez en français 🇫🇷"}, {"user", "你好！"}, {"assistant", "你好，有什么可以帮你？"}}),
      conversation({{"user", "Call the tool"}, {"assistant", "Calling."}, {"tool", "{\"temp\": 21}"}, {"tool", "second"},
                    {"assistant", "It is 21 degrees."}}),
      conversation({{"user", "Only a question"}}),
      conversation({{"user", "a"}, {"user", "b"}}),  // Llama 2 must raise
  };
}

struct Case {
  std::string name, source;
  Json context;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  const std::string qwen = load_chat_template_source(kQwenDir);
  const std::string llama3 = read(kTemplates + "/llama3.jinja"), llama32 = read(kTemplates + "/llama3.2.jinja"),
                    llama2 = read(kTemplates + "/llama2.jinja");
  // Same contexts ChatTemplate::render builds (transformers' apply_chat_template).
  const auto ctx = [](const Json& messages, bool gen, const char* bos, const char* eos) {
    Json c = {{"messages", messages}, {"tools", nullptr}, {"documents", nullptr}, {"add_generation_prompt", gen}};
    if (*bos) c["bos_token"] = bos;
    if (*eos) c["eos_token"] = eos;
    return c;
  };
  int k = 0;
  for (const Json& messages : conversations()) {
    for (bool gen : {false, true}) {
      const std::string tag = "conversation " + std::to_string(k) + (gen ? " +gen" : "");
      out.push_back({"qwen3 " + tag, qwen, ctx(messages, gen, "", "<|im_end|>")});
      Json no_think = ctx(messages, gen, "", "<|im_end|>");
      no_think["enable_thinking"] = false;
      out.push_back({"qwen3 enable_thinking=false " + tag, qwen, no_think});
      out.push_back({"llama3 " + tag, llama3, ctx(messages, gen, "<|begin_of_text|>", "<|eot_id|>")});
      Json dated = ctx(messages, gen, "<|begin_of_text|>", "<|eot_id|>");
      dated["date_string"] = "01 Jan 2025";
      out.push_back({"llama3.2 " + tag, llama32, dated});
      out.push_back({"llama2 " + tag, llama2, ctx(messages, gen, "<s>", "</s>")});
    }
    ++k;
  }
  // Other real templates (from @huggingface/jinja's end-to-end tests), one conversation each.
  const Json chat = conversations()[1];
  const std::vector<std::pair<std::string, std::string>> hub = {
      {"zephyr",
       "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
       "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
       "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
       "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"},
      {"deepseek-coder",
       "{% if not add_generation_prompt is defined %}\n{% set add_generation_prompt = false %}\n{% endif %}\n"
       "{%- set ns = namespace(found=false) -%}\n{%- for message in messages -%}\n    {%- if message['role'] == 'system' -%}\n"
       "        {%- set ns.found = true -%}\n    {%- endif -%}\n{%- endfor -%}\n{{bos_token}}{%- if not ns.found -%}\n"
       "{{'You are an AI programming assistant\\n'}}\n{%- endif %}\n{%- for message in messages %}\n"
       "    {%- if message['role'] == 'system' %}\n{{ message['content'] }}\n    {%- else %}\n"
       "        {%- if message['role'] == 'user' %}\n{{'### Instruction:\\n' + message['content'] + '\\n'}}\n        {%- else %}\n"
       "{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
       "{% if add_generation_prompt %}\n{{'### Response:'}}\n{% endif %}"},
      {"openchat",
       "{{ bos_token }}{% for message in messages %}{{ 'GPT4 Correct ' + message['role'].title() + ': ' + message['content'] + "
       "'<|end_of_turn|>'}}{% endfor %}{% if add_generation_prompt %}{{ 'GPT4 Correct Assistant:' }}{% endif %}"},
      {"features",
       "{%- set ns = namespace(n=0, names=[]) %}\n{%- for m in messages | selectattr('role', 'equalto', 'user') %}\n"
       "  {%- set ns.n = ns.n + 1 %}{%- set ns.names = ns.names + [m.role ~ loop.index] %}\n{%- endfor %}\n"
       "{{ ns.n }} {{ ns.names | join('|') }} {{ messages | length }} {{ (messages | last).role | upper }}\n"
       "{{ messages[1:3] | map(attribute='role') | list | tojson }} {{ messages[::-1][0].content[:5] }}\n"
       "{% for m in messages if m.role != 'system' %}{{ loop.index0 }}{{ m.content.split(' ')[0] | lower }}"
       "{{ ',' if not loop.last else '.' }}{% endfor %}\n{{ 'y' if 'x' in messages[0].content else 'n' }} {{ 7 // 2 }} {{ 7 % 3 }}"
       " {{ -3 }} {{ 'a' ~ 1 }} {{ 'y' if none is none }} {{ 'y' if 'Ab'.lower().startswith('a') }} {{ messages[0] | tojson }}"},
  };
  for (const auto& [name, source] : hub) out.push_back({name, source, ctx(chat, true, "<s>", "</s>")});
  return out;
}

TEST(ChatReference, TemplatesRenderByteForByteLikeTransformersJinja) {
  const std::vector<Case> all = cases();
  Json request = {{"render", Json::array()}};
  for (const Case& c : all) request["render"].push_back({{"template", c.source}, {"context", c.context}});
  std::string why;
  const auto reference = edgerazor_test::run_python_reference("hf_reference.py", request, why);
  if (!reference) GTEST_SKIP() << why;
  int compared = 0, raised = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const Json& expected = (*reference)["render"][i];
    SCOPED_TRACE(all[i].name);
    if (expected.is_object()) {  // the reference raised (e.g. Llama 2 roles not alternating)
      EXPECT_THROW(jinja::Template(all[i].source).render(jinja::Value::from_json(all[i].context.dump())),
                   jinja::TemplateError)
          << "reference error: " << expected.dump();
      ++raised;
      continue;
    }
    std::string ours;
    try {
      ours = jinja::Template(all[i].source).render(jinja::Value::from_json(all[i].context.dump())).text;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "we raised: " << e.what();
      continue;
    }
    EXPECT_EQ(ours, expected.get<std::string>());
    ++compared;
  }
  EXPECT_GT(compared, 60);
  EXPECT_GT(raised, 0);
}

TEST(ChatReference, RenderChatUsesTheSameContextAsTransformers) {
  // ChatTemplate builds the context itself; the result must equal the reference's rendering of
  // the context written out by hand above.
  const ChatTemplate qwen = ChatTemplate::from_model_dir(kQwenDir);
  const std::vector<ChatMessage> messages = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}};
  Json context = {{"messages", conversation({{"system", "S"}, {"user", "U"}, {"assistant", "A"}})},
                  {"tools", nullptr},
                  {"documents", nullptr},
                  {"add_generation_prompt", false},
                  {"eos_token", "<|im_end|>"},
                  {"pad_token", "<|endoftext|>"}};
  Json request = {{"render", {{{"template", qwen.source()}, {"context", context}}}}};
  std::string why;
  const auto reference = edgerazor_test::run_python_reference("hf_reference.py", request, why);
  if (!reference) GTEST_SKIP() << why;
  EXPECT_EQ(render_chat(qwen, messages, false).text, (*reference)["render"][0].get<std::string>());
}

TEST(ChatReference, RenderChatEqualsApplyChatTemplateOnTheFolder) {
  // transformers end to end: AutoTokenizer on the Qwen3 folder, apply_chat_template(tokenize=False).
  const ChatTemplate qwen = ChatTemplate::from_model_dir(kQwenDir);
  const std::vector<std::vector<ChatMessage>> chats = {
      {{"user", "Hi"}},
      {{"system", "You are terse."}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "and 3+3?"}},
      {{"user", "Think first"}, {"assistant", "<think>\nhmm\n</think>\n\nDone."}},
  };
  Json request = {{"tokenizer_dir", kQwenDir}, {"chat", Json::array()}};
  for (const auto& chat : chats)
    for (const bool prompt : {false, true}) {
      Json messages = Json::array();
      for (const auto& m : chat) messages.push_back({{"role", m.role}, {"content", m.content}});
      request["chat"].push_back({{"messages", messages}, {"add_generation_prompt", prompt}});
    }
  std::string why;
  const auto reference = edgerazor_test::run_python_reference("hf_reference.py", request, why);
  if (!reference) GTEST_SKIP() << why;
  size_t k = 0;
  for (const auto& chat : chats)
    for (const bool prompt : {false, true})
      EXPECT_EQ(render_chat(qwen, chat, prompt).text, (*reference)["chat"][k++].get<std::string>())
          << "chat " << k - 1 << (prompt ? " with" : " without") << " the generation prompt";
}

// edgerazor-data's chat documents are transformers' apply_chat_template(tokenize=True) ids, with
// no second <|im_end|>; a {"prompt", "response"} record is the same two-turn conversation.
TEST(ChatReference, EncodedChatRecordsEqualApplyChatTemplateIds) {
  const ChatTemplate qwen = ChatTemplate::from_model_dir(kQwenDir);
  const auto tokenizer = load_tokenizer(kQwenDir);
  Json request = {{"tokenizer_dir", kQwenDir},
                  {"chat_ids", {{{"messages", {{{"role", "user"}, {"content", "Say hi"}}, {{"role", "assistant"}, {"content", "Hi!"}}}}},
                                {{"messages", {{{"role", "system"}, {"content", "Be brief."}},
                                               {{"role", "user"}, {"content", "2+2?"}},
                                               {{"role", "assistant"}, {"content", "4"}},
                                               {{"role", "user"}, {"content", "3+3?"}},
                                               {{"role", "assistant"}, {"content", "6"}}}}}}}};
  std::string why;
  const auto reference = edgerazor_test::run_python_reference("hf_reference.py", request, why);
  if (!reference) GTEST_SKIP() << why;
  edgerazor::data::EncodeOptions o;
  o.chat_template = &qwen;
  const auto prompt_record = edgerazor::data::encode_jsonl_record(*tokenizer, R"({"prompt": "Say hi", "response": "Hi!"})", o);
  const auto two_turns = edgerazor::data::encode_jsonl_record(*tokenizer, "{\"messages\": " + request["chat_ids"][1]["messages"].dump() + "}", o);
  EXPECT_EQ(prompt_record.ids, (*reference)["chat_ids"][0].get<std::vector<int32_t>>());
  EXPECT_EQ(two_turns.ids, (*reference)["chat_ids"][1].get<std::vector<int32_t>>());
}

}  // namespace
}  // namespace edgerazor::text
