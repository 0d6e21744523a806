// End-to-end runs of edgerazor-generate, edgerazor-eval and edgerazor-data on the real
// stories260K folder: exit codes, outputs, error messages, no .tmp files left behind.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "fixtures/subprocess.h"
#include "fixtures/temp_dir.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/io/model_tokenizer.h"
#include "edgerazor/io/token_file.h"
#include "edgerazor/model/perplexity.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/text/sentencepiece_model.h"
#include "fixtures/tiny_models.h"

namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

using edgerazor_test::kBin;
using edgerazor_test::kData;
using edgerazor_test::kStories;
const std::string kValid = kData + "/text/tinystories-valid-sample.txt";

using edgerazor_test::Result;
using edgerazor_test::run;

class ToolsTest : public edgerazor_test::TempDirTest {};

TEST_F(ToolsTest, GenerateReproducesGreedyReference) {
  std::ifstream in(kStories + "/greedy_reference.json");
  const auto ref = nlohmann::json::parse(in);
  std::string expected_ids;
  for (const auto& t : ref["greedy_tokens"]) expected_ids += (expected_ids.empty() ? "" : ",") + std::to_string(t.get<int>());

  const Result ids = run(kBin + "/edgerazor-generate " + kStories + " --prompt-ids 1 --greedy --max-new-tokens 120 --print-ids");
  ASSERT_EQ(ids.code, 0) << ids.err;
  EXPECT_EQ(ids.out, expected_ids + "\n");

  const Result text = run(kBin + "/edgerazor-generate " + kStories + " --prompt-ids 1 --greedy --max-new-tokens 120");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out, ref["text"].get<std::string>() + "\n");

  // A text prompt is encoded in process (BOS added) and continued.
  const Result prompt = run(kBin + "/edgerazor-generate " + kStories + " --prompt 'Once upon a time' --greedy --max-new-tokens 12");
  ASSERT_EQ(prompt.code, 0) << prompt.err;
  EXPECT_EQ(prompt.out.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << prompt.out;
}

TEST_F(ToolsTest, GenerateSamplingIsReproducible) {
  const std::string cmd = kBin + "/edgerazor-generate " + kStories + " --prompt-ids 1 --temperature 0.8 --top-p 0.9 --seed 42 --max-new-tokens 20 --print-ids";
  const Result a = run(cmd), b = run(cmd);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(std::count(a.out.begin(), a.out.end(), ','), 19);
}

TEST_F(ToolsTest, GenerateBatchModeIsResumable) {
  const fs::path prompts = dir_ / "prompts.jsonl", out = dir_ / "generated.jsonl";
  std::ofstream(prompts) << R"({"prompt": "Once upon a time", "id": 1})" "\n"
                         << R"({"prompt": "The dog"})" "\n\n"
                         << R"({"prompt": "Tom and Sue went"})" "\n";
  // Pretend an earlier run finished the second prompt and died while writing the third.
  std::ofstream(out) << R"({"prompt": "The dog", "response": "EARLIER"})" "\n" << R"({"prompt": "Tom an)";
  const Result r = run(kBin + "/edgerazor-generate " + kStories + " --prompts " + prompts.string() + " --out " + out.string() +
                       " --greedy --max-new-tokens 16");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("3 prompts (1 already done)"));
  std::ifstream in(out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["response"], "EARLIER");  // kept, not regenerated
  EXPECT_EQ(rows[1]["prompt"], "Once upon a time");
  EXPECT_EQ(rows[1]["id"], 1);
  EXPECT_EQ(rows[1]["response"].get<std::string>().rfind(", there was a little girl", 0), 0u) << rows[1]["response"];
  EXPECT_EQ(rows[2]["prompt"], "Tom and Sue went");
  EXPECT_FALSE(rows[2]["response"].get<std::string>().empty());
  // Nothing left to do on a second run.
  const Result again = run(kBin + "/edgerazor-generate " + kStories + " --prompts " + prompts.string() + " --out " +
                           out.string() + " --greedy --max-new-tokens 16");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_THAT(again.err, HasSubstr("3 prompts (3 already done)"));
  expect_no_tmp();
}

TEST_F(ToolsTest, GenerateStopStringsTopKAndPerPromptOptions) {
  const std::string gen = kBin + "/edgerazor-generate " + kStories;
  const Result stop = run(gen + " --prompt 'Once upon a time' --greedy --max-new-tokens 40 --stop Lily --stop nothing");
  ASSERT_EQ(stop.code, 0) << stop.err;
  EXPECT_EQ(stop.out, "Once upon a time, there was a little girl named \n");
  const Result top1 = run(gen + " --prompt-ids 1 --temperature 1.5 --top-k 1 --seed 9 --max-new-tokens 12 --print-ids");
  const Result greedy = run(gen + " --prompt-ids 1 --greedy --max-new-tokens 12 --print-ids");
  ASSERT_EQ(top1.code, 0) << top1.err;
  EXPECT_EQ(top1.out, greedy.out);

  const fs::path prompts = dir_ / "options.jsonl", out = dir_ / "options.out.jsonl";
  std::ofstream(prompts) << R"({"prompt": "Once upon a time", "stop": ["girl"], "temperature": 0})" "\n"
                         << R"({"prompt": "The dog", "max_new_tokens": 3, "meta": {"kept": true}})" "\n";
  const Result r = run(gen + " --prompts " + prompts.string() + " --out " + out.string() + " --greedy --max-new-tokens 30");
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream in(out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["response"], ", there was a little ");
  EXPECT_EQ(rows[1]["response"], "was a big");  // 3 tokens; SentencePiece drops the first piece's space
  EXPECT_THAT(r.err, Not(HasSubstr("\r")));  // not a terminal: plain progress lines
  // Batched (the default 8) and one at a time write the same lines.
  const fs::path single = dir_ / "options.single.jsonl";
  const Result one = run(gen + " --prompts " + prompts.string() + " --out " + single.string() +
                         " --greedy --max-new-tokens 30 --batch-size 1");
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(edgerazor_test::read_file(single), edgerazor_test::read_file(out));

  const fs::path bad = dir_ / "bad.jsonl", bad_out = dir_ / "bad.out.jsonl";
  std::ofstream(bad) << R"({"prompt": "a"})" "\n" << R"({"prompt": "b", "top_k": -2})" "\n";
  const Result refused = run(gen + " --prompts " + bad.string() + " --out " + bad_out.string());
  EXPECT_EQ(refused.code, 2) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr(bad.string() + ":2"));
  EXPECT_THAT(refused.err, HasSubstr("top_k"));
  EXPECT_FALSE(fs::exists(bad_out) && fs::file_size(bad_out) > 0) << "nothing runs before every line is checked";
}

TEST_F(ToolsTest, EvalPerplexityMatchesIndependentComputation) {
  const Result r = run(kBin + "/edgerazor-eval " + kStories + " --text " + kValid + " --seq-len 257 --max-tokens 2048");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"], 2048);
  EXPECT_EQ(j["windows"], 8);
  EXPECT_EQ(j["bos"], true);
  EXPECT_THAT(r.err, HasSubstr("2048/2048 tokens"));  // progress bar
  // Independent: tokens from libsentencepiece (edgerazor-data), NLL from a plain forward with
  // explicit log-softmax per window, no batching.
  const fs::path tokens = dir_ / "valid.bin";
  ASSERT_EQ(run(kBin + "/edgerazor-data encode --tokenizer " + kStories + "/tokenizer.model --in " + kValid + " --out " +
                tokens.string()).code, 0);
  std::vector<int32_t> ids = edgerazor::io::read_token_file(tokens.string());
  ids.resize(2048);
  auto model = edgerazor::io::load_pretrained(kStories);
  at::NoGradGuard g;
  double nll = 0.0;
  for (int w = 0; w < 8; ++w) {
    std::vector<int64_t> window = {1};
    window.insert(window.end(), ids.begin() + w * 256, ids.begin() + (w + 1) * 256);
    const at::Tensor x = at::tensor(window, at::kLong).view({1, -1});
    const at::Tensor logp = at::log_softmax(model->forward(x).logits[0].to(at::kDouble), 1);
    for (int t = 0; t < 256; ++t) nll -= logp[t][window[t + 1]].item<double>();
  }
  EXPECT_NEAR(j["mean_nll"].get<double>(), nll / 2048, 1e-5);
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(nll / 2048), 1e-4);
  EXPECT_GT(j["mean_nll"].get<double>(), 1.0);
  EXPECT_LT(j["mean_nll"].get<double>(), 1.7);
  // Same result from the pre-tokenized file.
  const Result from_tokens = run(kBin + "/edgerazor-eval " + kStories + " --tokens " + tokens.string() +
                                 " --seq-len 257 --max-tokens 2048 --quiet");
  ASSERT_EQ(from_tokens.code, 0) << from_tokens.err;
  EXPECT_NEAR(nlohmann::json::parse(from_tokens.out)["mean_nll"].get<double>(), nll / 2048, 1e-5);
}

TEST_F(ToolsTest, DataEncodeDecodeRoundTrip) {
  const fs::path text = dir_ / "in.txt", tokens = dir_ / "t.bin", back = dir_ / "back.txt";
  const std::string content = "Lily saw a big dog.\nThe dog was happy!\n";
  std::ofstream(text) << content;
  const std::string tok = " --tokenizer " + kStories;
  ASSERT_EQ(run(kBin + "/edgerazor-data encode" + tok + " --in " + text.string() + " --out " + tokens.string() + " --bos").code, 0);
  const auto ids = edgerazor::io::read_token_file(tokens.string());
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  // Our in-process encoder agrees with libsentencepiece.
  edgerazor::text::SentencePieceTokenizer ours(edgerazor::text::read_sentencepiece_model(kStories + "/tokenizer.model"));
  std::vector<int32_t> expected = ours.encode(content);
  expected.insert(expected.begin(), 1);
  EXPECT_EQ(ids, expected);
  ASSERT_EQ(run(kBin + "/edgerazor-data decode" + tok + " --in " + tokens.string() + " --out " + back.string()).code, 0);
  std::ifstream in(back);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), content);
  const Result ids_out = run(kBin + "/edgerazor-data encode" + tok + " --text 'Once upon a time' --print-ids");
  EXPECT_EQ(ids_out.out, "403,407,261,378\n");
  const Result decoded = run(kBin + "/edgerazor-data decode" + tok + " --ids 1,403,407,261,378");
  EXPECT_EQ(decoded.out, "Once upon a time\n");
  expect_no_tmp();
}

TEST_F(ToolsTest, SubprocessEncodingFallbackMatches) {
  // The torch process can route encoding through edgerazor-data (for models our encoder
  // cannot reproduce); both paths give the same ids.
  edgerazor::io::ModelTokenizerOptions o;
  o.force_subprocess = true;
  o.data_tool = kBin + "/edgerazor-data";
  const auto via_tool = edgerazor::io::load_model_tokenizer(kStories, o);
  const auto in_process = edgerazor::io::load_model_tokenizer(kStories);
  const std::string text = "One day, Tim found a shiny stone. He was very happy.";
  EXPECT_EQ(via_tool->encode(text), in_process->encode(text));
  EXPECT_EQ(via_tool->decode(via_tool->encode(text)), text);
}

TEST_F(ToolsTest, BadInputsGiveClearErrors) {
  // Corrupt model folder: truncated weights.
  const fs::path model = dir_ / "model";
  fs::create_directories(model);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"}) fs::copy_file(fs::path(kStories) / f, model / f);
  fs::resize_file(model / "model.safetensors", fs::file_size(model / "model.safetensors") / 2);
  Result r = run(kBin + "/edgerazor-generate " + model.string() + " --prompt-ids 1 --print-ids");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("edgerazor-generate: error:"));
  EXPECT_THAT(r.err, HasSubstr("model.safetensors"));
  EXPECT_THAT(r.err, HasSubstr("truncated"));
  // Bad config.json.
  fs::copy_file(fs::path(kStories) / "model.safetensors", model / "model.safetensors", fs::copy_options::overwrite_existing);
  std::ofstream(model / "config.json") << R"({"model_type": "llama", "vocab_size": 512, "hidden_size": 64})";
  r = run(kBin + "/edgerazor-eval " + model.string() + " --text " + kValid);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("config.json"));
  EXPECT_THAT(r.err, HasSubstr("intermediate_size"));
  // Bad flags and ids.
  r = run(kBin + "/edgerazor-generate " + kStories + " --prompt-ids 1,x");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("'x'"));
  r = run(kBin + "/edgerazor-generate " + kStories + " --prompt-ids 9999 --print-ids");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("9999"));
  r = run(kBin + "/edgerazor-data encode --tokenizer " + kStories + " --in /nonexistent.txt --out " + (dir_ / "x.bin").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(fs::exists(dir_ / "x.bin"));
  // A corrupt token file.
  std::ofstream(dir_ / "bad.bin") << "not a token file";
  r = run(kBin + "/edgerazor-eval " + kStories + " --tokens " + (dir_ / "bad.bin").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad.bin"));
  expect_no_tmp();
}


// Post-training quantization through --quant: the PTQ baseline every QAD run is compared with.
TEST_F(ToolsTest, QuantFlagRunsPostTrainingQuantization) {
  const fs::path q = dir_ / "q.yaml";
  std::ofstream(q) << "quantization:\n  preset: w1.58a8kv8\n  function: {w_block_size: 4, a_block_size: 4, kv_block_size: 8}\n";
  const std::string eval = kBin + "/edgerazor-eval " + kStories + " --text " + kValid + " --max-tokens 512 --seq-len 129 --quiet";
  const Result fp = run(eval);
  const Result ptq = run(eval + " --quant " + q.string());
  ASSERT_EQ(fp.code, 0) << fp.err;
  ASSERT_EQ(ptq.code, 0) << ptq.err;
  const auto fp_nll = nlohmann::json::parse(fp.out)["mean_nll"].get<double>();
  const auto ptq_nll = nlohmann::json::parse(ptq.out)["mean_nll"].get<double>();
  EXPECT_GT(ptq_nll, fp_nll + 1.0);  // ternary without training hurts a 260K-parameter model a lot
  EXPECT_EQ(nlohmann::json::parse(ptq.out)["quant"], q.string());

  const Result gen = run(kBin + "/edgerazor-generate " + kStories + " --prompt-ids 1 --greedy --max-new-tokens 8 --print-ids --quant " + q.string());
  ASSERT_EQ(gen.code, 0) << gen.err;
  EXPECT_THAT(gen.err, HasSubstr("ternary linear B=4 +A"));
  EXPECT_THAT(gen.err, HasSubstr("KV cache: state_quant_uniform_symmetric_absmax_per_block_int8 (block 8) on 5"));

  const Result bad = run(kBin + "/edgerazor-generate " + kStories + " --prompt x --quant w1.58a8kv8");
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("w_block_size 256 does not divide the row length 64"));
  const Result unknown = run(kBin + "/edgerazor-eval " + kStories + " --text " + kValid + " --quant w3a8");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("neither a quantization preset nor a readable config file"));
}

// --chat renders the prompt with the model's own template (a tiny Qwen3 with the real tokenizer).
TEST_F(ToolsTest, GenerateChatUsesTheModelsTemplate) {
  edgerazor::model::ModelConfig c = edgerazor_test::tiny_qwen3_config(151936, 8, 16, 1, 4);
  c.rope_theta = 10000;  // the value this test was written with
  c.eos_token_ids = {151645};
  edgerazor::model::CausalLM model(c);
  const fs::path qwen = dir_ / "qwen3-tiny";
  edgerazor::io::save_pretrained(*model, qwen.string());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(kData + "/models/qwen3-tokenizer/" + f, qwen / f);
  const Result r = run(kBin + "/edgerazor-generate " + qwen.string() + " --chat --prompt 'Hi there' --greedy --max-new-tokens 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", 0), 0u) << r.out;
  // Interactive: stdin lines are user turns of one conversation; /reset forgets it. With 32
  // positions three turns (~8 template tokens each, plus two replies of 6) do not fit, unless the
  // conversation is reset between them.
  edgerazor::model::ModelConfig short_context = c;
  short_context.max_position_embeddings = 32;
  edgerazor::model::CausalLM small(short_context);
  const fs::path qwen48 = dir_ / "qwen3-tiny-48";
  edgerazor::io::save_pretrained(*small, qwen48.string());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(kData + "/models/qwen3-tokenizer/" + f, qwen48 / f);
  const std::string chat = kBin + "/edgerazor-generate " + qwen48.string() + " --chat --greedy --max-new-tokens 6";
  const Result reset = run("printf 'Hi there\\n/reset\\nHi there\\n/reset\\nHi there\\n' | " + chat);
  ASSERT_EQ(reset.code, 0) << reset.err;
  const Result long_chat = run("printf 'Hi there\\nHi there\\nHi there\\n' | " + chat);
  EXPECT_EQ(long_chat.code, 2) << long_chat.err;
  EXPECT_THAT(long_chat.err, HasSubstr("no longer fits the model's 32 positions; /reset starts a new one"));
  const Result none = run(kBin + "/edgerazor-generate " + kStories + " --chat --prompt 'Hi'");
  EXPECT_EQ(none.code, 2) << none.err;
  EXPECT_THAT(none.err, HasSubstr("edgerazor-generate: error:"));
}


// edgerazor-eval --tokens also reads version-2 training shards (documents joined in order).
TEST_F(ToolsTest, EvalReadsTrainingShards) {
  const fs::path shard = dir_ / "valid.shard";
  const Result enc = run(kBin + "/edgerazor-data encode --tokenizer " + kStories + " --in " + kValid +
                         " --out " + shard.string() + " --split blank-line");
  ASSERT_EQ(enc.code, 0) << enc.err;
  const Result ev = run(kBin + "/edgerazor-eval " + kStories + " --tokens " + shard.string() + " --max-tokens 256 --quiet");
  ASSERT_EQ(ev.code, 0) << ev.err;
  EXPECT_EQ(nlohmann::json::parse(ev.out)["tokens"].get<int64_t>(), 256);
}

}  // namespace

namespace {

// A run folder as the trainer leaves it (checkpoints/step_N with quantization.yaml and DONE), made
// from stories260K: eval, generate and export use the checkpoint's trained quantization unless
// told otherwise, and say so.
class CheckpointToolsTest : public edgerazor_test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    step_ = dir_ / "run" / "checkpoints" / "step_5";
    fs::create_directories(step_);
    for (const auto& e : fs::directory_iterator(kStories)) fs::copy(e.path(), step_ / e.path().filename());
    edgerazor_test::write_file(step_ / "quantization.yaml", R"(preset: w1.58a8kv8_embint4
function: {w_block_size: 64, a_block_size: 64, kv_block_size: 8}
overrides:
  - {name: .*down_proj, weight_function: weight_quant_uniform_symmetric_clip_per_channel_int1_58, w_block_size: -1,
     activation_function: state_quant_uniform_symmetric_absmax_per_token_int8, a_block_size: -1}
)");
    edgerazor_test::write_file(step_ / "DONE", "");
  }
  double ppl(const std::string& model, const std::string& flags, std::string* first_line = nullptr) {
    const Result r = run(kBin + "/edgerazor-eval " + model + " --text " + kValid + " --max-tokens 1024 --quiet " + flags);
    EXPECT_EQ(r.code, 0) << r.err;
    if (first_line) *first_line = r.err.substr(0, r.err.find('\n'));
    return r.code == 0 ? nlohmann::json::parse(r.out)["perplexity"].get<double>() : -1.0;
  }
  fs::path step_;
};

TEST_F(CheckpointToolsTest, EvalUsesTheTrainedQuantizationAndSaysSo) {
  std::string line;
  const double run_ppl = ppl((dir_ / "run").string(), "", &line);
  EXPECT_THAT(line, HasSubstr("newest complete checkpoint of the run"));
  EXPECT_THAT(line, HasSubstr("with its trained quantization"));
  EXPECT_THAT(line, HasSubstr("--no-quant"));
  const double ptq = ppl(kStories, "--quant " + (step_ / "quantization.yaml").string());
  EXPECT_DOUBLE_EQ(run_ppl, ptq);                      // the same model as deployed
  EXPECT_DOUBLE_EQ(ppl(step_.string(), ""), run_ppl);  // the checkpoint folder itself
  const double float_ppl = ppl(step_.string(), "--no-quant", &line);
  EXPECT_THAT(line, HasSubstr("float latent weights (--no-quant"));
  EXPECT_DOUBLE_EQ(float_ppl, ppl(kStories, ""));
  EXPECT_GT(run_ppl, 2 * float_ppl);  // ternary PTQ of stories260K: far worse, so not silently the float one
  const Result both = run(kBin + "/edgerazor-eval " + step_.string() + " --text " + kValid + " --quant w4a8kv8 --no-quant");
  EXPECT_EQ(both.code, 2);
  EXPECT_THAT(both.err, HasSubstr("give either --quant or --no-quant"));
}

TEST_F(CheckpointToolsTest, GenerateAndExportUseTheTrainedQuantization) {
  const std::string gen = kBin + "/edgerazor-generate ";
  const Result quantized = run(gen + (dir_ / "run").string() + " --prompt-ids 1 --greedy --max-new-tokens 12 --print-ids");
  ASSERT_EQ(quantized.code, 0) << quantized.err;
  EXPECT_THAT(quantized.err, HasSubstr("with its trained quantization"));
  const Result ptq = run(gen + kStories + " --quant " + (step_ / "quantization.yaml").string() +
                         " --prompt-ids 1 --greedy --max-new-tokens 12 --print-ids");
  EXPECT_EQ(quantized.out, ptq.out);
  const Result latent = run(gen + (dir_ / "run").string() + " --no-quant --prompt-ids 1 --greedy --max-new-tokens 12 --print-ids");
  const Result fp = run(gen + kStories + " --prompt-ids 1 --greedy --max-new-tokens 12 --print-ids");
  EXPECT_EQ(latent.out, fp.out);
  const Result gguf = run(kBin + "/edgerazor-export " + (dir_ / "run").string() + " --no-quant --format gguf --gguf-type f32 --out " +
                          (dir_ / "f.gguf").string());
  ASSERT_EQ(gguf.code, 0) << gguf.err;
}

}  // namespace

namespace {

// --check builds the quantization plan against the student's config.json: block sizes that fit no
// weight or head are reported with the file and the key, before any training.
class TrainCheckTest : public edgerazor_test::TempDirTest {};

TEST_F(TrainCheckTest, CheckBuildsTheQuantizationPlanAgainstTheModel) {
  edgerazor_test::write_file(path("t.bin"), "");
  const std::string check = std::string("cd ") + EDGERAZOR_SOURCE_DIR + " && " + kBin +
                            "/edgerazor-train configs/tiny-stories260k-w1.58.yaml --check --set 'data.sources[0].paths=[" +
                            path("t.bin") + "]' --set 'data.eval_sources[0].paths=[" + path("t.bin") + "]' ";
  const Result ok = run(check);
  ASSERT_EQ(ok.code, 0) << ok.err;
  const Result kv = run(check + "--set quantization.function.kv_block_size=16");
  EXPECT_EQ(kv.code, 2);
  EXPECT_THAT(kv.err, HasSubstr("configs/tiny-stories260k-w1.58.yaml: quantization (against "));
  EXPECT_THAT(kv.err, HasSubstr("function.kv_block_size: 16 does not divide the head dimension 8 of module "
                                "'model.layers.0.self_attn'"));
  const Result w = run(check + "--set quantization.function.w_block_size=128");
  EXPECT_EQ(w.code, 2);
  EXPECT_THAT(w.err, HasSubstr("configs/tiny-stories260k-w1.58.yaml: quantization"));
  EXPECT_THAT(w.err, HasSubstr("w_block_size 128 does not divide the row length 64"));
}

}  // namespace

namespace {

TEST_F(ToolsTest, EvalAndGenerateTakeSetForTheQuantization) {
  // The bundled model's rows of 64 need smaller blocks than the preset's 256: --set fixes that.
  const std::string base = kBin + "/edgerazor-eval " + kStories + " --text " + kValid + " --max-tokens 512 --quiet --quant w1.58a8kv8";
  const Result bad = run(base);
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("does not divide the row length 64"));
  const Result ok = run(base + " --set strict_blocks=false --set function.w_block_size=64 --set function.kv_block_size=8");
  EXPECT_EQ(ok.code, 0) << ok.err;
  const Result also = run(base + " --set quantization.strict_blocks=false --set quantization.function.w_block_size=64 --set quantization.function.kv_block_size=8");
  EXPECT_EQ(also.out, ok.out);
  const Result typo = run(base + " --set function.w_blok_size=64");
  EXPECT_EQ(typo.code, 2);
  EXPECT_THAT(typo.err, HasSubstr("error: --set function.w_blok_size=64: function.w_blok_size: unknown key"));
  const Result not_int = run(base + " --set function.w_block_size=abc");
  EXPECT_THAT(not_int.err, HasSubstr("error: --set function.w_block_size=abc: function.w_block_size: expected an integer"));
  // The KV block is checked against the model's head_dim when the quantizers go in, with its key.
  const Result kv = run(base + " --set strict_blocks=false --set function.w_block_size=64");
  EXPECT_EQ(kv.code, 2);
  EXPECT_THAT(kv.err, HasSubstr("w1.58a8kv8 with --set strict_blocks=false, function.w_block_size=64: "
                                "function.kv_block_size: 64 does not divide the head dimension 8"));
  const Result gguf = run(kBin + "/edgerazor-export " + kStories + " --preset w1.58a8kv8 --format gguf --out " + path("s.gguf") +
                          " --set strict_blocks=false --set function.w_block_size=64 --set function.kv_block_size=8");
  EXPECT_EQ(gguf.code, 0) << gguf.err;
  EXPECT_THAT(gguf.out, HasSubstr("--set edit(s)"));
  // Each warning once (in the report), not also logged while exporting: 5 down_proj rows of 172.
  const std::string both = gguf.out + gguf.err;
  size_t warnings = 0;
  for (size_t at = both.find("fits no quantized GGUF type"); at != std::string::npos;
       at = both.find("fits no quantized GGUF type", at + 1))
    ++warnings;
  EXPECT_EQ(warnings, 5u) << both;
  const Result no_quant = run(kBin + "/edgerazor-generate " + kStories + " --prompt-ids 1 --set function.w_block_size=64");
  EXPECT_EQ(no_quant.code, 2);
  EXPECT_THAT(no_quant.err, HasSubstr("--set: edits a quantization config"));
}

}  // namespace
