// Chat-template Jinja: the lexer, parser and interpreter on a template the input supplies,
// rendered for a fixed conversation with and without a generation prompt, then tokenized spans.
#include "edgerazor/text/chat_template.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  edgerazor_fuzz::expect_clear_errors([&] {
    const edgerazor::text::ChatTemplate chat_template(source, "<s>", "</s>");
    static const std::vector<edgerazor::text::ChatMessage> messages = {
        {"system", "Be brief."}, {"user", "Hi <b>there</b>"}, {"assistant", "<think>\nhm\n</think>\n\nHello"}, {"user", "Bye"}};
    for (const bool prompt : {false, true}) {
      const auto rendered = edgerazor::text::render_chat(chat_template, messages, prompt);
      size_t previous_end = 0;
      for (const auto& span : rendered.assistant_spans) {
        if (span.begin < previous_end || span.end < span.begin || span.end > rendered.text.size()) {
          std::fprintf(stderr, "assistant span [%zu, %zu) out of order or outside %zu bytes\n", span.begin, span.end,
                       rendered.text.size());
          std::abort();
        }
        previous_end = span.end;
      }
    }
  });
  return 0;
}
