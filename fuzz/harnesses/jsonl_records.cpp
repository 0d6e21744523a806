// JSONL records: {"text"}, {"prompt", "response"|"completion"}, {"messages": [...]}, duplicate keys,
// wrong types, nesting; each record encoded as `edgerazor-data encode` would (byte-level BPE
// covering every byte, a chat template with generation blocks), labels one per id.
#include <nlohmann/json.hpp>

#include "edgerazor/core/json_records.h"
#include "edgerazor/data/encode.h"
#include "edgerazor/text/chat_template.h"
#include "edgerazor/text/tokenizer.h"
#include "fuzz_support.h"

namespace {

// GPT-2's byte-to-Unicode table: printable Latin-1 bytes stand for themselves, the rest move to
// U+0100 onwards; one vocabulary entry per byte means any input encodes.
std::string byte_level_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  int next_high = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const int code = printable ? b : next_high++;
    std::string utf8;
    if (code < 0x80) {
      utf8 = std::string(1, static_cast<char>(code));
    } else {
      utf8 = {static_cast<char>(0xC0 | (code >> 6)), static_cast<char>(0x80 | (code & 0x3F))};
    }
    vocab[utf8] = b;
  }
  nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens", {{{"id", 256}, {"content", "<|endoftext|>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  return j.dump();
}

const edgerazor::text::Tokenizer& tokenizer() {
  static const auto t = edgerazor::text::load_hf_tokenizer(edgerazor_fuzz::write_scratch("tokenizer.json", byte_level_tokenizer_json()));
  return *t;
}

const edgerazor::text::ChatTemplate& chat_template() {
  static const edgerazor::text::ChatTemplate t(
      "{% for m in messages %}<|{{ m['role'] }}|>{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}"
      "{% endgeneration %}{% else %}{{ m['content'] }}{% endif %}\n{% endfor %}"
      "{% if add_generation_prompt %}<|assistant|>{% endif %}",
      "", "<|endoftext|>");
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string record(reinterpret_cast<const char*>(data), size);
  edgerazor::data::EncodeOptions options;
  options.chat_template = &chat_template();
  options.system_prompt = size % 2 ? "You are helpful." : "";
  options.bos = false;
  edgerazor_fuzz::expect_clear_errors([&] {
    const auto document = edgerazor::data::encode_jsonl_record(tokenizer(), record, options, "fuzz.jsonl", 1, 0);
    if (document.labels.size() != document.ids.size()) {
      std::fprintf(stderr, "%zu labels for %zu ids\n", document.labels.size(), document.ids.size());
      std::abort();
    }
  });
  // The generation tools read prompt records through json_records::parse as well.
  try {
    (void)edgerazor::json_records::parse(record);
  } catch (const edgerazor::json_records::DuplicateKey&) {
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
