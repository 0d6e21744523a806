// Chat templates without a reference install: the real Qwen3 template and Llama 3 template against golden text
// (verified with @huggingface/jinja 0.5.11), assistant spans and labels, and the Jinja
// interpreter feature by feature, including its error messages.
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fixtures/temp_dir.h"
#include "edgerazor/core/error.h"
#include "edgerazor/text/bpe_tokenizer.h"
#include "edgerazor/text/chat_template.h"
#include "fixtures/test_paths.h"

namespace edgerazor::text {
namespace {

using ::testing::HasSubstr;

const std::string kQwenDir = std::string(EDGERAZOR_SHARED_DATA_DIR) + "/models/qwen3-tokenizer";
const std::string kTemplates = std::string(EDGERAZOR_SOURCE_DIR) + "/tests/text/reference/templates";

const BpeTokenizer& qwen() {
  static const std::unique_ptr<BpeTokenizer> tok =
      BpeTokenizer::from_files(kQwenDir + "/tokenizer.json", kQwenDir + "/tokenizer_config.json");
  return *tok;
}
const ChatTemplate& qwen_chat() {
  static const ChatTemplate t = ChatTemplate::from_model_dir(kQwenDir);
  return t;
}

using edgerazor_test::read_file;

std::string span_text(const RenderedChat& chat, size_t k) {
  return chat.text.substr(chat.assistant_spans.at(k).begin, chat.assistant_spans.at(k).end - chat.assistant_spans.at(k).begin);
}

std::string render(const std::string& source, const std::string& context_json) {
  return jinja::Template(source).render(jinja::Value::from_json(context_json)).text;
}

TEST(ChatQwen3, RendersLikeTheReference) {
  // The rendering recorded in shared/data/SOURCES.md (@huggingface/jinja on the real template).
  const RenderedChat chat = render_chat(qwen_chat(), {{"user", "Hi"}, {"assistant", "Hello!"}}, false);
  EXPECT_EQ(chat.text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n");
  ASSERT_EQ(chat.assistant_spans.size(), 1u);
  EXPECT_EQ(span_text(chat, 0), "Hello!<|im_end|>");
}

TEST(ChatQwen3, GenerationPromptSystemAndThinkingSwitch) {
  const std::vector<ChatMessage> messages = {{"system", "You are terse."}, {"user", "2+2?"}};
  EXPECT_EQ(render_chat(qwen_chat(), messages, true).text,
            "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  ChatRenderOptions options;
  options.add_generation_prompt = true;
  options.variables = {{"enable_thinking", jinja::Value(false)}};
  const RenderedChat chat = render_chat(qwen_chat(), messages, options);
  EXPECT_EQ(chat.text, "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                       "<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_TRUE(chat.assistant_spans.empty());
}

TEST(ChatQwen3, OnlyTheTurnAfterTheLastQueryGetsAThinkBlock) {
  const RenderedChat chat = render_chat(
      qwen_chat(), {{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "<think>\nwhy\n</think>\n\nd"}}, false);
  EXPECT_EQ(chat.text,
            "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nwhy\n</think>\n\nd<|im_end|>\n");
  ASSERT_EQ(chat.assistant_spans.size(), 2u);
  EXPECT_EQ(span_text(chat, 0), "b<|im_end|>");  // not the "a" of "assistant"
  // The reasoning the message carries is rendered verbatim, so it is labelled with the reply.
  EXPECT_EQ(span_text(chat, 1), "<think>\nwhy\n</think>\n\nd<|im_end|>");
}

TEST(ChatQwen3, LstripKeepsPythonSemantics) {
  // Qwen3 renders content.lstrip('\n'): Python strips newlines only, so the indent stays.
  // (@huggingface/jinja 0.5.11 would strip the spaces too.)
  const RenderedChat chat = render_chat(qwen_chat(), {{"user", "q"}, {"assistant", "\n\n  indented"}}, false);
  EXPECT_EQ(chat.text, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n  indented<|im_end|>\n");
  EXPECT_EQ(span_text(chat, 0), "  indented<|im_end|>");
}

TEST(ChatQwen3, LabelsCoverExactlyTheAssistantTokens) {
  const RenderedChat chat =
      render_chat(qwen_chat(), {{"system", "Be kind."}, {"user", "Hi there"}, {"assistant", "Hello! How are you?"}}, false);
  const TokenizedChat tokens = tokenize_chat(qwen(), chat);
  EXPECT_EQ(tokens.ids, qwen().encode(chat.text));
  ASSERT_EQ(tokens.labels.size(), tokens.ids.size());
  std::vector<int32_t> labelled;
  for (size_t k = 0; k < tokens.ids.size(); ++k) {
    if (tokens.labels[k] != kIgnoreLabel) {
      EXPECT_EQ(tokens.labels[k], tokens.ids[k]);
      labelled.push_back(tokens.ids[k]);
    }
  }
  EXPECT_EQ(qwen().decode(labelled), "Hello! How are you?<|im_end|>");
  EXPECT_EQ(labelled.back(), *qwen().eos_id());
  // The trailing "\n" after <|im_end|> and the empty think block are not labelled.
  EXPECT_EQ(tokens.labels.back(), kIgnoreLabel);
}

TEST(ChatQwen3, TemplateFromTheTokenizerMatchesTheFolder) {
  EXPECT_EQ(qwen().chat_template(), qwen_chat().source());
  EXPECT_EQ(qwen_chat().eos_token(), "<|im_end|>");
  EXPECT_EQ(qwen_chat().bos_token(), "");
}

TEST(ChatLlama, Llama3AndLlama2RenderAndMask) {
  const ChatTemplate llama3(read_file(kTemplates + "/llama3.jinja"), "<|begin_of_text|>", "<|eot_id|>");
  const RenderedChat chat = render_chat(llama3, {{"user", " Hi "}, {"assistant", "Hello!\n"}}, true);
  EXPECT_EQ(chat.text,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  ASSERT_EQ(chat.assistant_spans.size(), 1u);
  EXPECT_EQ(span_text(chat, 0), "Hello!<|eot_id|>");

  const ChatTemplate llama2(read_file(kTemplates + "/llama2.jinja"), "<s>", "</s>");
  const RenderedChat chat2 = render_chat(llama2, {{"system", "Sys"}, {"user", "Q1"}, {"assistant", "A1"}, {"user", "Q2"}}, false);
  EXPECT_EQ(chat2.text, "<s>[INST] <<SYS>>\nSys\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]");
  ASSERT_EQ(chat2.assistant_spans.size(), 1u);
  EXPECT_EQ(span_text(chat2, 0), "A1 </s>");
  try {
    render_chat(llama2, {{"user", "a"}, {"user", "b"}}, false);
    FAIL() << "expected raise_exception";
  } catch (const jinja::TemplateError& e) {
    EXPECT_THAT(e.what(), HasSubstr("Conversation roles must alternate"));
  }
}

TEST(ChatSpans, GenerationBlocksGiveExactSpans) {
  const ChatTemplate t(
      "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}!{% endgeneration %}"
      "{% else %}{{ m.content }}{% endif %}{% endfor %}");
  EXPECT_TRUE(t.has_generation_blocks());
  const RenderedChat chat = render_chat(t, {{"user", "x"}, {"assistant", "y"}, {"user", "z"}, {"assistant", "w"}}, false);
  EXPECT_EQ(chat.text, "<user>x<assistant>y!<user>z<assistant>w!");
  ASSERT_EQ(chat.assistant_spans.size(), 2u);
  EXPECT_EQ(span_text(chat, 0), "y!");
  EXPECT_EQ(span_text(chat, 1), "w!");
}

TEST(ChatSpans, NestedBlocksGiveTheOuterSpanAndCapturedBlocksAreRefused) {
  // Nested blocks once gave overlapping spans out of order (found by the chat_template fuzzer).
  const ChatTemplate nested("{% for m in messages %}{% generation %}[{% generation %}{{ m.content }}{% endgeneration %}]"
                            "{% endgeneration %}{% endfor %}");
  const RenderedChat chat = render_chat(nested, {{"user", "x"}, {"assistant", "y"}}, false);
  ASSERT_EQ(chat.assistant_spans.size(), 2u);
  EXPECT_EQ(span_text(chat, 0), "[x]");
  EXPECT_EQ(span_text(chat, 1), "[y]");
  // Text a macro or {% set %} block captures moves afterwards: a span there would be wrong.
  for (const std::string& source : {std::string("{% macro m() %}{% generation %}x{% endgeneration %}{% endmacro %}{{ m() }}"),
                                    std::string("{% set y %}{% generation %}x{% endgeneration %}{% endset %}{{ y }}")}) {
    const ChatTemplate captured(source);
    try {
      render_chat(captured, {{"user", "x"}}, false);
      FAIL() << source;
    } catch (const jinja::TemplateError& e) {
      EXPECT_THAT(e.what(), HasSubstr("inside a macro or a {% set %} block is not supported"));
    }
  }
}

TEST(ChatSpans, AssistantTextTheTemplateDropsIsAnError) {
  const ChatTemplate t("{% for m in messages %}{{ m.role }}{% endfor %}");
  EXPECT_THROW(render_chat(t, {{"user", "x"}, {"assistant", "never shown"}}, false), jinja::TemplateError);
}

TEST(ChatTemplateLoading, FolderWithoutTemplateIsAFormatError) {
  try {
    ChatTemplate::from_model_dir(std::string(EDGERAZOR_SHARED_DATA_DIR) + "/models/stories260K-hf");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tokenizer_config.json"));
    EXPECT_THAT(e.what(), HasSubstr("chat_template"));
  }
  EXPECT_EQ(load_chat_template_source(std::string(EDGERAZOR_SHARED_DATA_DIR) + "/models/stories260K-hf"), "");
  EXPECT_EQ(load_chat_template_source(kQwenDir), qwen().chat_template());
  const std::vector<ChatMessage> m = chat_messages_from_json(R"([{"role": "user", "content": "hi"}, {"role": "assistant", "content": null}])");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].content, "hi");
  EXPECT_EQ(m[1].content, "");
  EXPECT_THROW(chat_messages_from_json(R"({"role": "user"})"), jinja::TemplateError);
}

// --- The interpreter, feature by feature (expected values are Python Jinja's).

TEST(ChatJinja, WhitespaceControlTrimAndLstripBlocks) {
  EXPECT_EQ(render("  {% if true %}\n  x\n  {% endif %}\ny\n", "{}"), "  x\ny");
  EXPECT_EQ(render("a   {{- 'b' -}}   c", "{}"), "abc");
  EXPECT_EQ(render("a {#- comment -#} b{# c #}\nd", "{}"), "abd");
  EXPECT_EQ(render("{%- for i in range(3) -%}\n {{ i }} \n{%- endfor %}", "{}"), "012");
}

TEST(ChatJinja, LoopsScopesAndNamespaces) {
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}/{{ loop.length }}{% if not loop.last %},{% endif %}{% endfor %}",
                   R"({"xs": ["a", "b", "c"]})"),
            "1/3,2/3,3/3");
  EXPECT_EQ(render("{% set n = 1 %}{% for x in [1, 2] %}{% set n = n + x %}{% endfor %}{{ n }}", "{}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(n=1) %}{% for x in [1, 2] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}", "{}"), "4");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}", "{}"), "empty");
  EXPECT_EQ(render("{% for x in range(10) if x is odd %}{% if x > 6 %}{% break %}{% endif %}{% if x == 3 %}{% continue %}{% endif %}{{ x }}{% endfor %}", "{}"), "15");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", R"({"d": {"b": 1, "a": 2}})"), "b=1;a=2;");
  EXPECT_EQ(render("{% for m in messages[::-1] %}{{ m }}{{ loop.previtem or '' }} {% endfor %}", R"({"messages": [1, 2, 3]})"), "3 23 12 ");
}

TEST(ChatJinja, ExpressionsFiltersTestsAndMethods) {
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }}", "{}"), "3 -4 1 2 3.5 1024 7");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ 'x' * 3 }} {{ [1] + [2] }} {{ true and 'y' }} {{ '' or 'z' }}", "{}"), "a1None xxx [1, 2] y z");
  EXPECT_EQ(render("{{ 'b' if x else 'c' }}{{ 'd' if x }}", R"({"x": 0})"), "c");
  EXPECT_EQ(render("{{ s.split('</think>')[-1].lstrip('\\n') }}|{{ s[:3] }}|{{ s[::-1][:2] }}", R"({"s": "ab</think>\n\ncd"})"), "cd|ab<|dc");
  EXPECT_EQ(render("{{ ' x '.strip() }}{{ 'a,b'.split(',') | length }}{{ 'Hi'.upper() }}{{ 'hello world'.title() }}", "{}"),
            "x2HIHello World");
  EXPECT_EQ(render("{{ '<t>' in s }}{{ s.startswith('<t>') }}{{ s.endswith(('x', 'z')) }}", R"({"s": "<t>yz"})"), "TrueTrueTrue");
  EXPECT_EQ(render("{{ d | tojson }} {{ [1, 'a\"'] | tojson }} {{ d | tojson(indent=2) }}", R"({"d": {"k": [1, 2.5, null, true]}})"),
            "{\"k\": [1, 2.5, null, true]} [1, \"a\\\"\"] {\n  \"k\": [\n    1,\n    2.5,\n    null,\n    true\n  ]\n}");
  EXPECT_EQ(render("{{ xs | map(attribute='n') | join(',') }} {{ xs | selectattr('n', 'equalto', 2) | list | length }}"
                   " {{ xs | first }} {{ (xs | last).n }} {{ none | default('d') }} {{ u | default('e') }}",
                   R"({"xs": [{"n": 1}, {"n": 2}, {"n": 2}]})"),
            "1,2,2 2 {'n': 1} 2 None e");
  EXPECT_EQ(render("{{ u is defined }}{{ x is none }}{{ x is not none }}{{ 's' is string }}{{ d is mapping }}{{ 4 is divisibleby 2 }}",
                   R"({"x": null, "d": {}})"),
            "FalseTrueFalseTrueTrueTrue");
  EXPECT_EQ(render("{{ d.get('a', 5) }}{{ d.get('k') }}{{ d['k'] }}{{ d.k }}{{ d.missing }}", R"({"d": {"k": 1}})"), "5111");
  EXPECT_EQ(render("{{ 'a\\tb\\n' | trim | replace('\\t', '-') }}", "{}"), "a-b");
}

TEST(ChatJinja, MacrosAndSetBlocks) {
  EXPECT_EQ(render("{% macro tag(name, v='x') %}<{{ name }}>{{ v }}{% endmacro %}{{ tag('a') }}{{ tag('b', v='y') }}", "{}"),
            "<a>x<b>y");
  EXPECT_EQ(render("{% set block %}in{{ 1 }}{% endset %}[{{ block }}]", "{}"), "[in1]");
}

TEST(ChatJinja, ErrorsNameTheTemplateLine) {
  try {
    jinja::Template("line one\n{{ x | no_such_filter }}").render(jinja::Value::from_json("{}"));
    FAIL();
  } catch (const jinja::TemplateError& e) {
    EXPECT_THAT(e.what(), HasSubstr("line 2"));
    EXPECT_THAT(e.what(), HasSubstr("no_such_filter"));
  }
  EXPECT_THROW(jinja::Template("{% if x %}never closed"), jinja::TemplateError);
  EXPECT_THROW(jinja::Template("{{ 'unterminated }}"), jinja::TemplateError);
  EXPECT_THROW(jinja::Template("{% unknown_tag %}"), jinja::TemplateError);
  try {
    jinja::Template("{{ raise_exception('custom message') }}").render(jinja::Value::from_json("{}"));
    FAIL();
  } catch (const jinja::TemplateError& e) {
    EXPECT_THAT(e.what(), HasSubstr("custom message"));
  }
  // An integer literal past int64 (found by the chat_template fuzzer; was std::out_of_range).
  try {
    jinja::Template("line one\n{{ 99999999999999999999 }}");
    FAIL();
  } catch (const jinja::TemplateError& e) {
    EXPECT_THAT(e.what(), HasSubstr("line 2"));
    EXPECT_THAT(e.what(), HasSubstr("integer literal 99999999999999999999 is out of range"));
  }
  // Nesting and recursion past the bounds are errors, not stack overflows (the chat_template fuzzer
  // found 2000 nested '[').
  auto error_of = [](const std::string& text) -> std::string {
    try {
      jinja::Template(text).render(jinja::Value::from_json("{}"));
    } catch (const jinja::TemplateError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_THAT(error_of("{{ " + std::string(2000, '[') + " }}"), HasSubstr("nests more than 200 levels deep"));
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += "+1";
  EXPECT_THAT(error_of(chain + " }}"), HasSubstr("nests more than 200 levels deep"));
  std::string blocks;
  for (int i = 0; i < 5000; ++i) blocks += "{% if true %}";
  EXPECT_THAT(error_of(blocks), HasSubstr("nests more than 200 levels deep"));
  EXPECT_THAT(error_of("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"),
              HasSubstr("macro 'f' calls nested more than 100 deep"));
  // int64 arithmetic past its range, and ranges/repetitions past the item bound, are errors (the
  // fuzzer found inf converted to an integer, which is undefined behaviour).
  EXPECT_THAT(error_of("{{ 9223372036854775807 + 1 }}"), HasSubstr("integer overflow in 9223372036854775807 + 1"));
  EXPECT_THAT(error_of("{{ 3037000500 * 3037000500 }}"), HasSubstr("integer overflow"));
  EXPECT_THAT(error_of("{{ 2 ** 64 }}"), HasSubstr("integer overflow"));
  EXPECT_THAT(error_of("{% for i in range(1000000000000) %}{% endfor %}"), HasSubstr("would hold 1000000000000 items"));
  EXPECT_THAT(error_of("{{ 'ab' * 100000000000 }}"), HasSubstr("would be larger than 16777216 bytes"));
  const auto render = [](const std::string& text) { return jinja::Template(text).render(jinja::Value::from_json("{}")).text; };
  const std::string inf = "(" + std::string(400, '9') + ".0)";  // no exponent literals in our lexer
  EXPECT_EQ(render("{{ (" + inf + " * 0) | int }}|{{ " + inf + " | int }}"), "0|9223372036854775807");
  EXPECT_EQ(render("{{ [1, 2, 3][::9223372036854775807] }}{{ range(10, 0, -4) | list }}"), "[1][10, 6, 2]");
  EXPECT_EQ(render("{{ 2 ** 62 }} {{ -7 // 2 }} {{ -7 % 3 }}"), "4611686018427387904 -4 2");
  std::string nested_ok = "{{ " + std::string(50, '(') + "1" + std::string(50, ')') + " }}";
  EXPECT_EQ(jinja::Template(nested_ok).render(jinja::Value::from_json("{}")).text, "1");
  // Exponent literals, as Jinja lexes them; one past double is inf, as in Python.
  EXPECT_EQ(render("{{ 1e3 }} {{ 2.5E-1 }} {{ 1_0.5e+1 }} {{ 1e999 > 1.0 }}"), "1000.0 0.25 105.0 True");
  // Floats print as Python's repr (these strings are jinja2 3.1.6's output for the same template).
  EXPECT_EQ(render("{{ 1e16 }} {{ 1.5e-5 }} {{ 0.0001 }} {{ 0.00001 }} {{ 123456789012345.6 }} {{ 1234567890123456.7 }} "
                   "{{ -0.5 }} {{ 0.1 + 0.2 }} {{ 5e-324 }} {{ 1.7976931348623157e308 }} {{ 100.0 }} {{ 0.0 }} {{ -0.0 }}"),
            "1e+16 1.5e-05 0.0001 1e-05 123456789012345.6 1234567890123456.8 -0.5 0.30000000000000004 5e-324 "
            "1.7976931348623157e+308 100.0 0.0 -0.0");
  // A float literal past double is inf, as in Python.
  const std::string huge_float = std::string(400, '9') + ".0";
  EXPECT_EQ(jinja::Template("{{ " + huge_float + " > 1.0 }}").render(jinja::Value::from_json("{}")).text, "True");
}

}  // namespace
}  // namespace edgerazor::text
