// End-to-end runs of edgerazor-data (build/bin): encode (text with document splits, JSONL with
// prompt/response and chat), info, decode, flat token files; exit codes, outputs, clear errors,
// no partial outputs or .tmp files. The shards it writes are then read by DataLoader.
#include <gmock/gmock.h>

#include <nlohmann/json.hpp>

#include "data/test_util.h"
#include "edgerazor/data/encode.h"
#include "edgerazor/data/loader.h"
#include "edgerazor/data/shard.h"
#include "edgerazor/text/chat_template.h"
#include "edgerazor/text/tokenizer.h"

namespace {
using namespace data_test;
using edgerazor::data::ShardReader;
using ::testing::HasSubstr;

const std::string kTool = kBin + "/edgerazor-data";

class DataCliTest : public TempDirTest {};

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

TEST_F(DataCliTest, EncodeTextShardInfoDecodeAndLoad) {
  const std::string out = path("train.bin");
  Result r = run(kTool + " encode --tokenizer " + kStories + " --in " + kTrainText + " --out " + out + " --split auto");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("2316 documents"));
  r = run(kTool + " info --json " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto info = nlohmann::json::parse(r.out);
  EXPECT_EQ(info["version"], 2);
  EXPECT_EQ(info["documents"], 2316);
  EXPECT_EQ(info["bytes_per_token"], 2);
  EXPECT_EQ(info["vocab_size"], 512);
  EXPECT_EQ(info["eos_id"], 2);
  EXPECT_EQ(info["label_mask"], false);
  EXPECT_EQ(info["label_tokens"], info["tokens"]);
  // Every document is the tokenized story + EOS, as the library encodes it.
  const auto docs = edgerazor::data::split_documents(read_file(kTrainText), edgerazor::data::DocumentSplit::kAuto);
  const auto tok = edgerazor::text::load_tokenizer(kStories);
  ShardReader shard(out);
  ASSERT_EQ(shard.documents(), docs.size());
  for (uint64_t d : {uint64_t{0}, uint64_t{1}, uint64_t{1000}, uint64_t{2315}}) {
    std::vector<int32_t> ids;
    for (uint64_t i = shard.document_begin(d); i < shard.document_begin(d + 1); ++i) ids.push_back(shard.token(i));
    ASSERT_EQ(ids.back(), 2);
    ids.pop_back();
    EXPECT_EQ(ids, tok->encode(docs[d])) << "document " << d;
  }
  r = run(kTool + " decode --tokenizer " + kStories + " --in " + out + " --document 1 --out " + path("doc1.txt"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_file(path("doc1.txt")), docs[1]);
  r = run(kTool + " info " + out);
  EXPECT_THAT(r.out, HasSubstr("documents  2316"));
  // The trainer's loader reads it: packed rows of 256, EOS between stories, labels = ids.
  edgerazor::data::DataConfig c;
  c.sources = {{"stories", {out}, 1.0}};
  c.seq_len = 256;
  edgerazor::data::DataLoader loader(c, 4);
  EXPECT_EQ(loader.vocab_size(), 512);
  EXPECT_EQ(loader.rows_per_epoch(), (info["tokens"].get<int64_t>() + 255) / 256);
  int64_t eos = 0, rows = 0;
  while (loader.epoch() == 0) {
    const auto b = loader.next();
    rows += b.batch_size;
    for (size_t i = 0; i < b.input_ids.size(); ++i) {
      eos += b.input_ids[i] == 2 && b.attention_mask[i] == 1;
      if (b.attention_mask[i]) EXPECT_EQ(b.labels[i], b.input_ids[i]);
    }
  }
  EXPECT_EQ(rows, (loader.rows_per_epoch() + 3) / 4 * 4);
  EXPECT_GE(eos, 2316);  // one epoch (plus the rows of the next that filled the last batch)
  expect_no_tmp();
}

TEST_F(DataCliTest, TokenizerFolderFileAndQwen) {
  const auto qwen = edgerazor::text::load_tokenizer(kQwen);
  const std::string text = "Hello world, this is Qwen.";
  // A Qwen folder (tokenizer.json) works for flat encoding too.
  Result r = run(kTool + " encode --tokenizer " + kQwen + " --text '" + text + "' --print-ids");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, join(qwen->encode(text)) + "\n");
  r = run(kTool + " encode --tokenizer " + kQwen + "/tokenizer.json --text '" + text + "' --print-ids");
  EXPECT_EQ(r.out, join(qwen->encode(text)) + "\n");
  // A .model file and its folder agree.
  const Result a = run(kTool + " encode --tokenizer " + kStories + "/tokenizer.model --text 'Once upon a time' --print-ids");
  const Result b = run(kTool + " encode --tokenizer " + kStories + " --text 'Once upon a time' --print-ids");
  EXPECT_EQ(a.out, "403,407,261,378\n");
  EXPECT_EQ(b.out, a.out);
  // Shard mode prints one line per document, with EOS.
  write_file(path("two.txt"), "Once upon a time\n\nThe end\n");
  r = run(kTool + " encode --tokenizer " + kStories + " --text \"$(cat " + path("two.txt") + ")\" --split blank-line --print-ids");
  EXPECT_EQ(r.out, "403,407,261,378,2\n" + join(edgerazor::text::load_tokenizer(kStories)->encode("The end")) + ",2\n");
  // Qwen shard round trip through decode.
  write_file(path("q.txt"), "First story.\n\nSecond story, with \xc3\xa9.\n");
  r = run(kTool + " encode --tokenizer " + kQwen + " --in " + path("q.txt") + " --out " + path("q.bin") +
          " --split blank-line --eos-id 151643");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("uint32"));
  r = run(kTool + " decode --tokenizer " + kQwen + " --in " + path("q.bin"));
  EXPECT_EQ(r.out, "First story.<|endoftext|>Second story, with \xc3\xa9.<|endoftext|>\n");
  expect_no_tmp();
}

TEST_F(DataCliTest, EncodeJsonlPromptAndChatLabels) {
  write_file(path("d.jsonl"),
             "{\"text\": \"A plain story.\"}\n"
             "{\"prompt\": \"Q: 2+2?\\nAnswer:\", \"response\": \" 4\"}\n"
             "\n"
             "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n");
  // By default a prompt/response record goes through the chat template when there is one.
  Result r = run(kTool + " encode-jsonl --tokenizer " + kQwen + " --in " + path("d.jsonl") + " --out " + path("chat.bin"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run(kTool + " decode --tokenizer " + kQwen + " --in " + path("chat.bin") + " --document 1 --mark-labels");
  EXPECT_THAT(r.out, HasSubstr("<|im_start|>user\nQ: 2+2?\nAnswer:<|im_end|>\n<|im_start|>assistant\n"));
  EXPECT_THAT(r.out, HasSubstr("[[ 4<|im_end|>]]\n"));
  // Plain, with no separator: the raw prompt + response a base model trains on.
  const std::string plain = " --prompt-format plain --prompt-separator ''";
  r = run(kTool + " encode-jsonl --tokenizer " + kQwen + " --in " + path("d.jsonl") + " --out " + path("d.bin") + plain);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("3 documents (1 text, 1 prompt/response, 1 chat)"));
  r = run(kTool + " encode --format jsonl --tokenizer " + kQwen + " --in " + path("d.jsonl") + " --out " + path("e.bin") + plain);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_file(path("d.bin")), read_file(path("e.bin")));
  // Same ids and labels as the library computes in-process.
  const auto tok = edgerazor::text::load_tokenizer(kQwen);
  const auto chat = edgerazor::text::ChatTemplate::from_model_dir(kQwen);
  edgerazor::data::EncodeOptions o;
  o.chat_template = &chat;
  ShardReader shard(path("d.bin"));
  ASSERT_EQ(shard.documents(), 3u);
  const auto expected = edgerazor::data::encode_jsonl_record(
      *tok, R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})", o);
  std::vector<int32_t> ids;
  std::vector<uint8_t> labels;
  for (uint64_t i = shard.document_begin(2); i < shard.document_begin(3); ++i) {
    ids.push_back(shard.token(i));
    labels.push_back(shard.label(i));
  }
  EXPECT_EQ(ids, expected.ids);
  EXPECT_EQ(labels, expected.labels);
  r = run(kTool + " encode-jsonl --tokenizer " + kQwen + " --in " + path("d.jsonl") + " --print-ids" + plain);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.substr(r.out.find('\n') + 1, r.out.find('\n', r.out.find('\n') + 1) - r.out.find('\n')),
            join(tok->encode("Q: 2+2?\nAnswer:")) + "," + join(tok->encode(" 4")) + ",151645\n");
  r = run(kTool + " decode --tokenizer " + kQwen + " --in " + path("d.bin") + " --document 1 --mark-labels");
  EXPECT_EQ(r.out, "Q: 2+2?\nAnswer:[[ 4<|im_end|>]]\n");
  r = run(kTool + " decode --tokenizer " + kQwen + " --in " + path("d.bin") + " --document 2 --mark-labels");
  EXPECT_THAT(r.out, HasSubstr("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
  EXPECT_THAT(r.out, HasSubstr("[[Hello!<|im_end|>]]"));
  r = run(kTool + " info --json " + path("d.bin"));
  const auto info = nlohmann::json::parse(r.out);
  EXPECT_EQ(info["label_mask"], true);
  EXPECT_LT(info["label_tokens"].get<int64_t>(), info["tokens"].get<int64_t>());
  // The loader masks prompts: pad mode, one record per row.
  edgerazor::data::DataConfig c;
  c.sources = {{"mixed", {path("d.bin")}, 1.0}};
  c.seq_len = 64;
  c.packing = "pad";
  c.shuffle = false;
  c.pad_id = 151643;
  edgerazor::data::DataLoader loader(c, 3);
  const auto batch = loader.next();
  const auto prompt = tok->encode("Q: 2+2?\nAnswer:");
  for (size_t t = 0; t < prompt.size(); ++t) EXPECT_EQ(batch.labels[64 + t], -100);
  EXPECT_EQ(batch.labels[64 + prompt.size()], batch.input_ids[64 + prompt.size()]);
  EXPECT_EQ(batch.label_tokens(), info["label_tokens"].get<int64_t>());
  expect_no_tmp();
}

TEST_F(DataCliTest, FlatTokenFileUnchanged) {
  write_file(path("in.txt"), "Lily saw a big dog.\n\nThe dog was happy!\n");
  Result r = run(kTool + " encode --tokenizer " + kStories + " --in " + path("in.txt") + " --out " + path("t.bin") + " --bos");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto info = edgerazor::data::read_shard_info(path("t.bin"));
  EXPECT_EQ(info.version, 1);  // what edgerazor-eval --tokens and the subprocess tokenizer read
  EXPECT_EQ(info.documents, 1u);
  std::vector<int32_t> expected{1};
  const auto ids = edgerazor::text::load_tokenizer(kStories)->encode(read_file(path("in.txt")));
  expected.insert(expected.end(), ids.begin(), ids.end());
  ShardReader shard(path("t.bin"));
  std::vector<int32_t> got;
  for (uint64_t i = 0; i < shard.size(); ++i) got.push_back(shard.token(i));
  EXPECT_EQ(got, expected);
}

TEST_F(DataCliTest, BadInputsGiveClearErrorsAndNoOutput) {
  write_file(path("bad.jsonl"), "{\"text\": \"ok\"}\n{\"text\": \"fine\"}\n{\"prompt\": 1, \"response\": \"x\"}\n");
  Result r = run(kTool + " encode-jsonl --tokenizer " + kStories + " --in " + path("bad.jsonl") + " --out " + path("o.bin"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("edgerazor-data: error: " + path("bad.jsonl") + ": at byte 32: line 3: 'prompt' must be a string"));
  EXPECT_FALSE(fs::exists(path("o.bin")));
  write_file(path("chat.jsonl"), R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})");
  r = run(kTool + " encode-jsonl --tokenizer " + kStories + " --in " + path("chat.jsonl") + " --out " + path("o.bin"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("need a chat template"));
  r = run(kTool + " encode --tokenizer " + kStories + " --in " + kValidText + " --out " + path("o.bin") + " --split paragraphs");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--split: must be none, line, blank-line, separator or auto (got 'paragraphs')"));
  r = run(kTool + " encode --tokenizer " + kStories + " --in " + kValidText + " --out " + path("o.bin") + " --format xml");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--format"));
  r = run(kTool + " encode --tokenizer " + dir_.string() + " --in " + kValidText + " --out " + path("o.bin") + " --split auto");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("no tokenizer"));
  write_file(path("blank.txt"), "\n\n  \n");
  r = run(kTool + " encode --tokenizer " + kStories + " --in " + path("blank.txt") + " --out " + path("o.bin") + " --split line");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("no documents"));
  EXPECT_FALSE(fs::exists(path("o.bin")));
  // Damaged shards.
  ASSERT_EQ(run(kTool + " encode --tokenizer " + kStories + " --in " + kValidText + " --out " + path("v.bin") + " --split auto").code, 0);
  r = run(kTool + " decode --tokenizer " + kStories + " --in " + path("v.bin") + " --document 999999");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--document: 999999 is out of range"));
  fs::resize_file(path("v.bin"), fs::file_size(path("v.bin")) - 8);
  r = run(kTool + " info " + path("v.bin"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path("v.bin")));
  EXPECT_THAT(r.err, HasSubstr("truncated"));
  r = run(kTool + " decode --tokenizer " + kQwen + " --ids 1,x");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("'x'"));
  r = run(kTool + " frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(run(kTool + " --help").code, 0);
  expect_no_tmp();
}

}  // namespace
