// Our GGUF files in a real llama.cpp (llama-cpp-python from PyPI, built once from source into the
// reference cache by tests/reference/install.sh; tests/reference/run_llama.py drives it):
//   - the F32 export of stories260K greedy-decodes the 120 tokens of greedy_reference.json;
//   - the 1.58-bit exports (Q4_0 from ternary codes for stories260K's rows of 64; TQ2_0/TQ1_0 for
//     a model with rows of 256) decode the same first tokens as our quantized model and give
//     logits close to ours (llama.cpp rounds activations to Q8_0/Q8_K blocks before quantized
//     matmuls; we do not, so logits differ by that rounding, not more);
//   - a Qwen3 GGUF's BPE tokenizer metadata tokenizes text id for id like our tokenizer.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "edgerazor/export/export.h"
#include "edgerazor/export/gguf.h"
#include "edgerazor/export/gguf_export.h"
#include "edgerazor/model/generation.h"
#include "edgerazor/text/bpe_tokenizer.h"
#include "export_test_util.h"
#include "fixtures/python_reference.h"

namespace {
using namespace edgerazor::exporter;
using namespace export_test;
using nlohmann::json;

std::string g_python, g_skip_reason;

class LlamaCppTest : public TempDirTest {
 protected:
  static void SetUpTestSuite() {
    if (!g_python.empty() || !g_skip_reason.empty()) return;
    if (const auto python = edgerazor_test::reference_python(g_skip_reason)) g_python = *python;
  }
  void SetUp() override {
    TempDirTest::SetUp();
    if (g_python.empty()) GTEST_SKIP() << g_skip_reason;
  }
  json llama(const std::string& gguf, const std::string& args) {
    const Result r = run(g_python + " " + kSource + "/tests/reference/run_llama.py " + gguf + " " + args);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? json::parse(r.out) : json();
  }
  std::vector<int64_t> llama_decode(const std::string& gguf, const std::vector<int64_t>& prompt, int n) {
    return llama(gguf, "decode " + csv(prompt) + " " + std::to_string(n)).at("tokens").get<std::vector<int64_t>>();
  }
  // (T, V) logits after each id, from llama.cpp.
  at::Tensor llama_logits(const std::string& gguf, const std::vector<int64_t>& ids) {
    const auto rows = llama(gguf, "logits " + csv(ids)).at("logits").get<std::vector<std::vector<float>>>();
    std::vector<at::Tensor> t;
    for (const auto& r : rows) t.push_back(at::tensor(r));
    return at::stack(t);
  }
  static std::string csv(const std::vector<int64_t>& ids) {
    std::string s;
    for (auto id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
    return s;
  }
};

std::vector<int64_t> reference_tokens() {
  const json ref = json::parse(read_text(kStories + "/greedy_reference.json"));
  return ref.at("greedy_tokens").get<std::vector<int64_t>>();
}

at::Tensor our_logits(const QuantizedModel& qm, const std::vector<int64_t>& ids) {
  edgerazor::model::CausalLM m = qm.model;
  at::NoGradGuard g;
  return m->forward(at::tensor(ids, at::kLong).unsqueeze(0)).logits.squeeze(0).to(at::kFloat);
}

// Compares llama.cpp with our model on one sequence: logits within tol, and the same argmax
// wherever our top-1/top-2 gap exceeds 2 * tol (closer calls may flip under activation rounding).
void expect_logits_close(const at::Tensor& ours, const at::Tensor& theirs, double tol, const std::string& what) {
  ASSERT_EQ(ours.sizes(), theirs.sizes()) << what;
  const double diff = (ours - theirs).abs().max().item<double>();
  const auto top2 = ours.topk(2, -1);
  const at::Tensor gap = std::get<0>(top2).select(1, 0) - std::get<0>(top2).select(1, 1);
  const at::Tensor agree = ours.argmax(-1).eq(theirs.argmax(-1));
  const at::Tensor decisive = gap.gt(2 * tol);
  std::printf("%s: max |logit diff| %.4g over %lld positions, %lld/%lld decisive positions agree\n", what.c_str(), diff,
              static_cast<long long>(ours.size(0)), static_cast<long long>(agree.logical_and(decisive).sum().item<int64_t>()),
              static_cast<long long>(decisive.sum().item<int64_t>()));
  EXPECT_LT(diff, tol) << what;
  EXPECT_TRUE(agree.logical_or(decisive.logical_not()).all().item<bool>()) << what;
}

TEST_F(LlamaCppTest, F32StoriesReproducesGreedyReference) {
  ExportOptions o;
  o.source.source = kStories;
  o.format = "gguf";
  o.gguf_type = "f32";
  o.out = (dir_ / "stories-f32.gguf").string();
  export_model(o);
  const auto ref = reference_tokens();
  EXPECT_EQ(llama_decode(o.out, {1}, 120), ref);
  // And logits on the whole reference sequence agree with ours to float rounding.
  const QuantizedModel qm = load_quantized_model(o.source);
  std::vector<int64_t> ids = {1};
  ids.insert(ids.end(), ref.begin(), ref.begin() + 63);
  expect_logits_close(our_logits(qm, ids), llama_logits(o.out, ids), 1e-3, "stories260K F32");
}

TEST_F(LlamaCppTest, TernaryStoriesDecodesLikeEdgerazorGenerate) {
  write_text(dir_ / "tq.yaml", kStoriesTernaryYaml);
  ExportOptions o;
  o.source.source = kStories;
  o.source.config_file = (dir_ / "tq.yaml").string();
  o.format = "gguf";
  o.out = (dir_ / "stories-ternary.gguf").string();
  const ExportReport report = export_model(o);
  std::printf("stories260K ternary GGUF: %llu bytes (bf16 %llu)\n", static_cast<unsigned long long>(report.file_bytes),
              static_cast<unsigned long long>(report.bf16_bytes()));
  // The first tokens of edgerazor-generate on the same post-training-quantized model.
  const Result gen = run(kBin + "/edgerazor-generate " + kStories + " --quant " + (dir_ / "tq.yaml").string() +
                         " --prompt-ids 1 --greedy --max-new-tokens 16 --print-ids");
  ASSERT_EQ(gen.code, 0) << gen.err;
  std::vector<int64_t> expected;
  std::stringstream ss(gen.out);
  for (std::string item; std::getline(ss, item, ',');) expected.push_back(std::stoll(item));
  ASSERT_EQ(expected.size(), 16u);
  EXPECT_EQ(llama_decode(o.out, {1}, 16), expected);
  // Teacher-forced on real text (the FP model's greedy story): logits close to ours.
  const QuantizedModel qm = load_quantized_model(o.source);
  const auto ref = reference_tokens();
  std::vector<int64_t> ids = {1};
  ids.insert(ids.end(), ref.begin(), ref.begin() + 63);
  const at::Tensor ours = our_logits(qm, ids);
  // The same fake-quant weights as F32: llama.cpp then computes what we compute.
  GgufExportOptions dense;
  dense.type = "f32";
  write_gguf(qm, (dir_ / "dense.gguf").string(), dense);
  expect_logits_close(ours, llama_logits((dir_ / "dense.gguf").string(), ids), 1e-3, "stories260K ternary as F32");
  // From codes (Q4_0 + F16): the gap is llama.cpp's Q8_0 activation rounding (and fp16 scales);
  // the file itself holds exactly codes * fp16(scale) (export_test). Measured: 0.84 on logits up
  // to |18| (4.7 %); every decisive argmax agrees.
  const double range = ours.abs().max().item<double>();
  std::printf("stories260K ternary: max |logit| %.3g\n", range);
  expect_logits_close(ours, llama_logits(o.out, ids), 0.06 * range, "stories260K ternary (Q4_0 + F16)");
}

TEST_F(LlamaCppTest, Tq2AndTq1DecodeLikeOurModel) {
  make_wide_model(dir_ / "wide");
  write_text(dir_ / "t256.yaml", R"(quantization:
  select:
    target_types: [linear, embedding]
  function:
    weight_function: weight_quant_uniform_symmetric_clip_per_block_int1_58
    w_block_size: 256
)");
  ExportSourceOptions so;
  so.source = (dir_ / "wide").string();
  so.config_file = (dir_ / "t256.yaml").string();
  const QuantizedModel qm = load_quantized_model(so);
  std::vector<int64_t> ours;
  {
    edgerazor::model::CausalLM m = qm.model;
    edgerazor::model::GenerationOptions go;
    go.greedy = true;
    go.max_new_tokens = 16;
    ours = edgerazor::model::generate(*m, {1}, go);
  }
  for (const std::string type : {"tq2_0", "tq1_0"}) {
    GgufExportOptions go;
    go.type = type;
    const std::string path = (dir_ / (type + ".gguf")).string();
    write_gguf(qm, path, go);
    EXPECT_EQ(GgufFile::open(path)->find_tensor("blk.0.attn_q.weight")->type,
              type == "tq2_0" ? GgmlType::kTQ2_0 : GgmlType::kTQ1_0);
    EXPECT_EQ(llama_decode(path, {1}, 16), ours) << type;
    std::vector<int64_t> ids = {1};
    ids.insert(ids.end(), ours.begin(), ours.end());
    for (int64_t i = 0; i < 24; ++i) ids.push_back((37 * i + 11) % 512);
    expect_logits_close(our_logits(qm, ids), llama_logits(path, ids), 0.25, "random 256-wide llama " + type);
  }
}

// A Qwen3-shaped model with random weights and the real Qwen3 tokenizer (vocab 151936).
fs::path save_tiny_qwen3(const fs::path& dir, int layers) {
  const std::string cfg = R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": )" + std::to_string(layers) + R"(, "num_attention_heads": 2,
    "num_key_value_heads": 1, "head_dim": 32, "vocab_size": 151936, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000, "hidden_act": "silu", "tie_word_embeddings": true,
    "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "float32", "attention_bias": false})";
  edgerazor::model::CausalLM m(edgerazor::model::parse_model_config(cfg));
  edgerazor::io::SaveOptions so;
  so.tokenizer_source_dir = kData + "/models/qwen3-tokenizer";
  edgerazor::io::save_pretrained(*m, dir.string(), so);
  return dir;
}

TEST_F(LlamaCppTest, QwenBpeTokenizerMetadataTokenizesLikeOurs) {
  const fs::path dir = save_tiny_qwen3(dir_ / "qwen3-tiny", 1);
  ExportOptions o;
  o.source.source = dir.string();
  o.format = "gguf";
  o.gguf_type = "f16";
  o.out = (dir_ / "qwen3.gguf").string();
  export_model(o);
  const auto g = GgufFile::open(o.out);
  EXPECT_EQ(g->find("tokenizer.ggml.model")->s, "gpt2");
  EXPECT_EQ(g->find("tokenizer.ggml.pre")->s, "qwen2");
  EXPECT_EQ(g->find("tokenizer.ggml.tokens")->strings.size(), 151936u);
  EXPECT_EQ(g->find("tokenizer.ggml.eos_token_id")->u, 151645u);
  EXPECT_EQ(g->find("tokenizer.ggml.padding_token_id")->u, 151643u);
  EXPECT_EQ(g->find("tokenizer.ggml.bos_token_id")->u, 151643u);
  EXPECT_EQ(g->find("tokenizer.ggml.add_bos_token")->u, 0u);
  EXPECT_THAT(g->find("tokenizer.chat_template")->s, ::testing::HasSubstr("<|im_start|>"));
  EXPECT_GT(g->find("tokenizer.ggml.merges")->strings.size(), 150000u);

  const std::string text =
      "Hello world! It's 2026: 12345 apples cost $3.50.\n\n  Indented  line\twith tabs.\n"
      "你好，世界。Ünïcödé façade — naïve café, emoji 🙂👍.\nThe end";
  write_text(dir_ / "text.txt", text);
  const json r = llama(o.out, "tokenize " + (dir_ / "text.txt").string());
  const auto tok = edgerazor::text::BpeTokenizer::from_files(dir.string() + "/tokenizer.json", dir.string() + "/tokenizer_config.json");
  const auto ours = tok->encode(text);
  EXPECT_EQ(r.at("tokens").get<std::vector<int32_t>>(), ours);
  EXPECT_EQ(r.at("text").get<std::string>(), text);
  EXPECT_EQ(r.at("eos").get<int64_t>(), 151645);
}


// Issue #10 end to end: a tiny Qwen3-shaped model (vocab 151936) with the real Qwen3 tokenizer
// goes through edgerazor-data -> a few edgerazor-train QAD steps -> GGUF export of the run ->
// llama.cpp loads it, tokenizes like us, and decodes.
TEST_F(LlamaCppTest, QwenTinyModelDataTrainExportRunsInLlamaCpp) {
  const fs::path model = save_tiny_qwen3(dir_ / "qwen3-tiny", 2);
  const fs::path shard = dir_ / "train.bin";
  const Result data = run(kBin + "/edgerazor-data encode --tokenizer " + model.string() + " --in " + kData +
                          "/text/tinystories-valid-sample.txt --out " + shard.string() + " --split blank-line");
  ASSERT_EQ(data.code, 0) << data.err;
  const fs::path config = dir_ / "qwen.yaml";
  write_text(config, "run: {name: qwen, output_dir: " + (dir_ / "runs").string() + ", seed: 1}\n"
                     "model: {teacher: " + model.string() + "}\n"
                     "quantization:\n  preset: w4a8kv8\n  function: {w_block_size: 32, a_block_size: 32, kv_block_size: 32}\n"
                     "distillation:\n  loss_task_alpha: 1.0\n  losses:\n    - {loss_function: eakld, alpha: 1.0, temperature: 1.0, confidence_k: 16}\n"
                     "data:\n  sources: [{name: stories, paths: [" + shard.string() + "]}]\n  seq_len: 32\n"
                     "train: {max_steps: 3, micro_batch_size: 2, lr: 1.0e-3, warmup_steps: 0, save_interval: 3,\n"
                     "        eval_interval: 0, log_interval: 1, eval_at_start: false}\n");
  const Result train = run(kBin + "/edgerazor-train " + config.string() + " --threads 1");
  ASSERT_EQ(train.code, 0) << train.out << train.err;
  ASSERT_TRUE(fs::exists(dir_ / "runs/qwen/checkpoints/step_3/DONE"));

  ExportOptions o;
  o.source.source = (dir_ / "runs/qwen").string();
  o.format = "gguf";
  o.out = (dir_ / "qwen3-w4.gguf").string();
  export_model(o);
  const auto g = GgufFile::open(o.out);
  EXPECT_EQ(g->find("tokenizer.ggml.pre")->s, "qwen2");
  EXPECT_EQ(g->find_tensor("blk.0.attn_q.weight")->type, GgmlType::kQ4_0);  // INT4 codes, blocks of 32

  const std::string text = "Once upon a time, Lily saw 3 cats. 你好 🙂";
  write_text(dir_ / "text.txt", text);
  const json r = llama(o.out, "tokenize " + (dir_ / "text.txt").string());
  const auto tok = edgerazor::text::BpeTokenizer::from_files(model.string() + "/tokenizer.json",
                                                             model.string() + "/tokenizer_config.json");
  EXPECT_EQ(r.at("tokens").get<std::vector<int32_t>>(), tok->encode(text));
  EXPECT_EQ(llama_decode(o.out, {151643, 7, 8}, 4).size(), 4u);  // the trained model runs
}

}  // namespace
