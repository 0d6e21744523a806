// Text/JSONL -> documents with label masks, on the real tokenizers (stories260K SentencePiece,
// Qwen3 byte-level BPE with its chat template).
#include <gmock/gmock.h>

#include <sstream>

#include "data/test_util.h"
#include "edgerazor/core/error.h"
#include "edgerazor/data/encode.h"
#include "edgerazor/text/chat_template.h"
#include "edgerazor/text/tokenizer.h"

namespace {
using namespace data_test;
using edgerazor::ConfigError;
using edgerazor::FormatError;
using edgerazor::data::DocumentSplit;
using edgerazor::data::EncodedDocument;
using edgerazor::data::EncodeOptions;
using edgerazor::data::split_documents;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const edgerazor::text::Tokenizer& stories() {
  static const auto t = edgerazor::text::load_tokenizer(kStories);
  return *t;
}
const edgerazor::text::Tokenizer& qwen() {
  static const auto t = edgerazor::text::load_tokenizer(kQwen);
  return *t;
}
const edgerazor::text::ChatTemplate& qwen_chat() {
  static const auto t = edgerazor::text::ChatTemplate::from_model_dir(kQwen);
  return t;
}

// The ids whose label flag is `labelled`, decoded.
std::string decode_where(const edgerazor::text::Tokenizer& tok, const EncodedDocument& d, bool labelled) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < d.ids.size(); ++i)
    if ((d.labels[i] != 0) == labelled) ids.push_back(d.ids[i]);
  return tok.decode(ids);
}

TEST(SplitDocuments, Modes) {
  const std::string t = "a b\n\n  \nc\nd\n\n\ne <|endoftext|>\nf\n";
  EXPECT_THAT(split_documents(t, DocumentSplit::kNone), ElementsAre(t));
  EXPECT_THAT(split_documents(t, DocumentSplit::kLine), ElementsAre("a b", "c", "d", "e <|endoftext|>", "f"));
  EXPECT_THAT(split_documents(t, DocumentSplit::kBlankLine), ElementsAre("a b", "c\nd", "e <|endoftext|>\nf"));
  EXPECT_THAT(split_documents(t, DocumentSplit::kSeparator), ElementsAre("a b\n\n  \nc\nd\n\n\ne", "f"));
  EXPECT_THAT(split_documents(t, DocumentSplit::kAuto), ElementsAre("a b\n\n  \nc\nd\n\n\ne", "f"));
  EXPECT_THAT(split_documents("x\n\ny", DocumentSplit::kAuto), ElementsAre("x", "y"));
  EXPECT_THAT(split_documents("  indented\n", DocumentSplit::kBlankLine), ElementsAre("  indented"));
  EXPECT_THAT(split_documents("a##b##", DocumentSplit::kSeparator, "##"), ElementsAre("a", "b"));
  EXPECT_TRUE(split_documents("\n \n", DocumentSplit::kBlankLine).empty());
  EXPECT_EQ(edgerazor::data::parse_document_split("blank-line"), DocumentSplit::kBlankLine);
  EXPECT_THROW(edgerazor::data::parse_document_split("paragraph"), ConfigError);
}

TEST(SplitDocuments, TinyStoriesTrainSampleIsSeparatedByEndOfText) {
  const std::string text = read_file(kTrainText);
  const auto docs = split_documents(text, DocumentSplit::kAuto);
  EXPECT_EQ(docs.size(), 2316u);  // one <|endoftext|> after every story
  for (const auto& d : docs) {
    EXPECT_EQ(d.find("<|endoftext|>"), std::string::npos);
    EXPECT_NE(d.front(), '\n');
    EXPECT_NE(d.back(), '\n');
  }
  EXPECT_EQ(docs[1].substr(0, 49), "Once upon a time, there was a little car named Be");
}

TEST(EncodeText, SentencePieceRoundTripWithEos) {
  EncodeOptions o;
  o.bos = true;
  const EncodedDocument d = edgerazor::data::encode_text_document(stories(), "Once upon a time", o);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{1, 403, 407, 261, 378, 2}));  // BOS ... EOS
  EXPECT_EQ(d.labels, (std::vector<uint8_t>(6, 1)));
  // Every story of the valid sample survives encode -> decode.
  const auto docs = split_documents(read_file(kValidText), DocumentSplit::kBlankLine);
  ASSERT_GT(docs.size(), 1000u);
  EncodeOptions plain;
  for (size_t i = 0; i < docs.size(); i += 37) {
    EncodedDocument e = edgerazor::data::encode_text_document(stories(), docs[i], plain);
    ASSERT_EQ(e.ids.back(), 2);
    e.ids.pop_back();
    EXPECT_EQ(stories().decode(e.ids), docs[i]);
  }
}

TEST(EncodeText, QwenRoundTripAndEosOverride) {
  EncodeOptions o;
  const std::string s = "Lily's cat sat on 3 mats. \xe4\xbd\xa0\xe5\xa5\xbd!";
  EncodedDocument d = edgerazor::data::encode_text_document(qwen(), s, o);
  EXPECT_EQ(d.ids.back(), 151645);  // <|im_end|>, the tokenizer_config eos
  d.ids.pop_back();
  EXPECT_EQ(qwen().decode(d.ids), s);
  o.eos_id = 151643;  // <|endoftext|>, what base-model pretraining uses
  EXPECT_EQ(edgerazor::data::encode_text_document(qwen(), s, o).ids.back(), 151643);
  o.eos_id = 999999;
  EXPECT_THROW(edgerazor::data::encode_text_document(qwen(), s, o), ConfigError);
  o.eos_id = -1;
  o.bos = true;  // Qwen has no BOS
  EXPECT_THROW(edgerazor::data::encode_text_document(qwen(), s, o), ConfigError);
}

TEST(EncodeJsonl, PromptResponseLabelsResponseOnly) {
  EncodeOptions o;
  o.bos = true;
  const EncodedDocument d = edgerazor::data::encode_jsonl_record(
      stories(), R"({"prompt": "Tom had a red ball.", "response": "He played with it."})", o);
  // No chat template: plain, prompt + "\n" + response (the default separator).
  const auto p = stories().encode("Tom had a red ball.\n"), r = stories().encode("He played with it.");
  std::vector<int32_t> ids{1};
  ids.insert(ids.end(), p.begin(), p.end());
  ids.insert(ids.end(), r.begin(), r.end());
  ids.push_back(2);
  EXPECT_EQ(d.ids, ids);
  std::vector<uint8_t> labels(1 + p.size(), 0);
  labels.resize(ids.size(), 1);
  EXPECT_EQ(d.labels, labels);
  // "completion" is accepted too.
  EXPECT_EQ(edgerazor::data::encode_jsonl_record(stories(), R"({"prompt": "Tom had a red ball.", "completion": "He played with it."})", o).ids, ids);
  // Another separator, or none (TRL's raw prompt + completion).
  o.prompt_separator = "";
  const auto raw = stories().encode("Tom had a red ball.");
  std::vector<int32_t> raw_ids{1};
  raw_ids.insert(raw_ids.end(), raw.begin(), raw.end());
  raw_ids.insert(raw_ids.end(), r.begin(), r.end());
  raw_ids.push_back(2);
  EXPECT_EQ(edgerazor::data::encode_jsonl_record(stories(), R"({"prompt": "Tom had a red ball.", "response": "He played with it."})", o).ids, raw_ids);
  o.prompt_format = edgerazor::data::PromptFormat::kChat;
  EXPECT_THROW(edgerazor::data::encode_jsonl_record(stories(), R"({"prompt": "a", "response": "b"})", o), FormatError);
  EXPECT_THROW(edgerazor::data::parse_prompt_format("jinja", "--prompt-format"), ConfigError);
}

TEST(EncodeJsonl, QwenPromptResponseGoesThroughTheChatTemplate) {
  EncodeOptions o;
  o.chat_template = &qwen_chat();
  const EncodedDocument pr = edgerazor::data::encode_jsonl_record(qwen(), R"({"prompt": "Say hi", "response": "Hi!"})", o);
  const EncodedDocument chat = edgerazor::data::encode_jsonl_record(
      qwen(), R"({"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}]})", o);
  EXPECT_EQ(pr.ids, chat.ids);
  EXPECT_EQ(pr.labels, chat.labels);
  EXPECT_EQ(decode_where(qwen(), pr, true), "Hi!<|im_end|>");
  EXPECT_THAT(qwen().decode(pr.ids), HasSubstr("<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\n"));
  o.prompt_format = edgerazor::data::PromptFormat::kPlain;  // a base model's raw text instead
  o.prompt_separator = "\n";
  EXPECT_EQ(qwen().decode(edgerazor::data::encode_jsonl_record(qwen(), R"({"prompt": "Say hi", "response": "Hi!"})", o).ids),
            "Say hi\nHi!<|im_end|>");
}

TEST(EncodeJsonl, QwenChatLabelsAssistantRepliesOnly) {
  EncodeOptions o;
  o.chat_template = &qwen_chat();
  o.system_prompt = "You are a helpful and harmless AI assistant.";
  const std::string rec =
      R"({"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."},)"
      R"( {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "It is 6."}]})";
  const EncodedDocument d = edgerazor::data::encode_jsonl_record(qwen(), rec, o);
  // Ids are the whole rendered conversation (system prompt added); it already ends with the
  // EOS <|im_end|> (and "\n"), so no second one is appended.
  const auto rendered = edgerazor::text::render_chat(
      qwen_chat(),
      {{"system", o.system_prompt}, {"user", "What is 2+2?"}, {"assistant", "It is 4."}, {"user", "And 3+3?"}, {"assistant", "It is 6."}},
      false);
  const std::vector<int32_t> expected = qwen().encode(rendered.text);
  EXPECT_EQ(d.ids, expected);
  EXPECT_THAT(qwen().decode(d.ids), HasSubstr("<|im_start|>system\nYou are a helpful and harmless AI assistant.<|im_end|>"));
  // Labelled: both replies with their <|im_end|>; nothing of the prompts.
  EXPECT_EQ(decode_where(qwen(), d, true), "It is 4.<|im_end|>It is 6.<|im_end|>");
  const std::string unlabelled = decode_where(qwen(), d, false);
  EXPECT_THAT(unlabelled, HasSubstr("What is 2+2?"));
  EXPECT_THAT(unlabelled, HasSubstr("<|im_start|>assistant\n"));
  EXPECT_EQ(unlabelled.find("It is"), std::string::npos);
  EXPECT_EQ(qwen().decode({d.ids.back()}), "\n");
}

TEST(EncodeJsonl, TextRecordAndErrorsNameLine) {
  EncodeOptions o;
  const EncodedDocument d = edgerazor::data::encode_jsonl_record(stories(), R"({"text": "Once upon a time"})", o);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{403, 407, 261, 378, 2}));
  auto error = [&](const std::string& json) {
    try {
      edgerazor::data::encode_jsonl_record(stories(), json, o, "in.jsonl", 7, 300);
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_THAT(error("{\"text\": 3}"), HasSubstr("in.jsonl: at byte 300: line 7: 'text' must be a string, got number"));
  EXPECT_THAT(error("{\"text\": "), HasSubstr("line 7: not valid JSON"));
  EXPECT_THAT(error("[1]"), HasSubstr("expected a JSON object, got array"));
  EXPECT_THAT(error("{\"body\": \"x\"}"), HasSubstr("expected a \"text\", \"prompt\"/\"response\" or \"messages\" field"));
  EXPECT_THAT(error("{\"prompt\": \"x\"}"), HasSubstr("needs a 'response'"));
  EXPECT_THAT(error(R"({"messages": [{"role": "user", "content": "x"}]})"), HasSubstr("need a chat template"));
  o.chat_template = &qwen_chat();
  EXPECT_THAT(error(R"({"messages": [{"role": "user", "content": "x"}]})"), HasSubstr("no assistant message"));
  EXPECT_THAT(error(R"({"messages": [{"content": "x"}]})"), HasSubstr("messages[0]: expected an object with a string 'role'"));
  EXPECT_THAT(error(R"({"messages": []})"), HasSubstr("non-empty array"));
}

TEST_F(TempDirTest, EncodeJsonlStreamIntoShard) {
  EncodeOptions o;
  o.chat_template = &qwen_chat();
  o.prompt_format = edgerazor::data::PromptFormat::kPlain;
  o.prompt_separator = "";
  std::stringstream in(
      "{\"text\": \"Hello world.\"}\n\n"
      "{\"prompt\": \"Q: 2+2?\\nAnswer:\", \"response\": \" 4\"}\n"
      "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n");
  edgerazor::data::ShardWriterOptions wo;
  wo.vocab_size = qwen().vocab_size();
  wo.label_mask = true;
  edgerazor::data::ShardWriter w(path("c.bin"), wo);
  const auto s = edgerazor::data::encode_jsonl(qwen(), in, "mem", o, w);
  w.finish();
  EXPECT_EQ(s.documents, 3u);
  EXPECT_EQ(s.text_records, 1u);
  EXPECT_EQ(s.prompt_records, 1u);
  EXPECT_EQ(s.chat_records, 1u);
  edgerazor::data::ShardReader r(path("c.bin"));
  EXPECT_EQ(r.documents(), 3u);
  EXPECT_EQ(r.size(), s.tokens);
  EXPECT_EQ(r.count_label_tokens(), s.label_tokens);
  EXPECT_EQ(r.info().bytes_per_token, 4);
  // The second document: "Q: 2+2?\nAnswer:" unlabelled, " 4" + EOS labelled.
  const auto prompt = qwen().encode("Q: 2+2?\nAnswer:");
  const uint64_t b = r.document_begin(1);
  for (uint64_t i = b; i < r.document_begin(2); ++i) EXPECT_EQ(r.label(i), i >= b + prompt.size()) << i;
  // A bad line stops the stream with its line number and byte offset.
  std::stringstream bad("{\"text\": \"ok\"}\n{\"text\": 1}\n");
  edgerazor::data::ShardWriter w2(path("d.bin"), wo);
  try {
    edgerazor::data::encode_jsonl(qwen(), bad, "bad.jsonl", o, w2);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad.jsonl: at byte 15: line 2:"));
  }
}

}  // namespace
