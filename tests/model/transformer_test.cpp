// The model zoo transformer: golden greedy tokens and perplexity of the real stories260K model
// (against a naive float64 forward written here), KV cache and padding equivalence, hidden
// states, tiny Qwen2/Qwen3 models through save/reload, backward, checkpointing, bf16.
#include "edgerazor/model/transformer.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "edgerazor/core/error.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/io/safetensors.h"
#include "edgerazor/io/tensor_io.h"
#include "edgerazor/model/generation.h"
#include "edgerazor/model/perplexity.h"
#include "edgerazor/text/sentencepiece_model.h"
#include "fixtures/test_paths.h"

namespace {
namespace fs = std::filesystem;
using namespace edgerazor::model;
using edgerazor::FormatError;
using ::testing::HasSubstr;

const std::string kData = EDGERAZOR_SHARED_DATA_DIR;
const std::string kStories = kData + "/models/stories260K-hf";

at::Tensor ids_tensor(const std::vector<int64_t>& ids) {
  return at::tensor(ids, at::TensorOptions().dtype(at::kLong)).view({1, -1});
}

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("er_model_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Naive Llama forward in float64, written independently of the model code: per-head loops,
// RoPE from std::pow/std::cos, no GQA expansion tricks. Returns logits (T, V).
at::Tensor naive_llama_logits(const std::map<std::string, at::Tensor>& w_in, const ModelConfig& c,
                              const std::vector<int64_t>& ids) {
  auto w = [&](const std::string& name) { return w_in.at(name).to(at::kDouble); };
  const int64_t T = static_cast<int64_t>(ids.size()), D = c.head_dim, H = c.num_attention_heads;
  const int64_t Hkv = c.num_key_value_heads;
  auto rms = [&](const at::Tensor& x, const at::Tensor& g) {
    return x / at::sqrt((x * x).mean(-1, true) + c.rms_norm_eps) * g;
  };
  // RoPE (rotate_half layout): pairs (i, i + D/2) rotate by pos * theta^(-2i/D).
  at::Tensor cosv = at::empty({T, D / 2}, at::kDouble), sinv = at::empty({T, D / 2}, at::kDouble);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < D / 2; ++i) {
      const double angle = t * std::pow(c.rope_theta, -2.0 * i / D);
      cosv[t][i] = std::cos(angle);
      sinv[t][i] = std::sin(angle);
    }
  auto rope = [&](const at::Tensor& x /*(T, D)*/) {
    const at::Tensor a = x.narrow(1, 0, D / 2), b = x.narrow(1, D / 2, D / 2);
    return at::cat({a * cosv - b * sinv, b * cosv + a * sinv}, 1);
  };
  at::Tensor x = w("model.embed_tokens.weight").index_select(0, at::tensor(ids, at::kLong));  // (T, C)
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const at::Tensor h = rms(x, w(p + "input_layernorm.weight"));
    const at::Tensor q = at::matmul(h, w(p + "self_attn.q_proj.weight").t());
    const at::Tensor k = at::matmul(h, w(p + "self_attn.k_proj.weight").t());
    const at::Tensor v = at::matmul(h, w(p + "self_attn.v_proj.weight").t());
    std::vector<at::Tensor> heads;
    for (int64_t hd = 0; hd < H; ++hd) {
      const int64_t kv = hd / (H / Hkv);
      const at::Tensor qh = rope(q.narrow(1, hd * D, D)), kh = rope(k.narrow(1, kv * D, D));
      at::Tensor scores = at::matmul(qh, kh.t()) / std::sqrt(static_cast<double>(D));  // (T, T)
      scores = scores.masked_fill(at::ones({T, T}, at::kBool).triu(1), -INFINITY);
      heads.push_back(at::matmul(at::softmax(scores, 1), v.narrow(1, kv * D, D)));
    }
    x = x + at::matmul(at::cat(heads, 1), w(p + "self_attn.o_proj.weight").t());
    const at::Tensor m = rms(x, w(p + "post_attention_layernorm.weight"));
    const at::Tensor g = at::matmul(m, w(p + "mlp.gate_proj.weight").t());
    const at::Tensor u = at::matmul(m, w(p + "mlp.up_proj.weight").t());
    x = x + at::matmul(g * at::sigmoid(g) * u, w(p + "mlp.down_proj.weight").t());
  }
  x = rms(x, w("model.norm.weight"));
  return at::matmul(x, w("model.embed_tokens.weight").t());  // tied lm_head
}

std::vector<int64_t> greedy_reference() {
  std::ifstream in(kStories + "/greedy_reference.json");
  const auto j = nlohmann::json::parse(in);
  return j["greedy_tokens"].get<std::vector<int64_t>>();
}

// ---------------------------------------------------------------------------------------------
TEST(StoriesModel, GreedyDecodingReproducesReference) {
  auto model = edgerazor::io::load_pretrained(kStories);
  GenerationOptions o;
  o.greedy = true;
  o.max_new_tokens = 120;
  EXPECT_EQ(generate(*model, {1}, o), greedy_reference());
}

TEST(StoriesModel, TiedEmbeddingIsOneTensorUnderHfNames) {
  auto model = edgerazor::io::load_pretrained(kStories);
  EXPECT_EQ(model->lm_head->weight.unsafeGetTensorImpl(), model->model->embed_tokens->weight.unsafeGetTensorImpl());
  const auto params = model->named_parameters(true);
  EXPECT_TRUE(params.contains("lm_head.weight"));
  EXPECT_EQ(params["lm_head.weight"].unsafeGetTensorImpl(), params["model.embed_tokens.weight"].unsafeGetTensorImpl());
  EXPECT_TRUE(params.contains("model.layers.4.self_attn.q_proj.weight"));
  EXPECT_TRUE(params.contains("model.layers.0.mlp.down_proj.weight"));
  EXPECT_TRUE(params.contains("model.norm.weight"));
  const auto unique = edgerazor::io::checkpoint_tensors(*model);
  EXPECT_EQ(unique.size(), 47u);  // no lm_head.weight
}

TEST(StoriesModel, LogitsAndPerplexityMatchNaiveFloat64Forward) {
  auto model = edgerazor::io::load_pretrained(kStories);
  const auto weights = edgerazor::io::load_safetensors(kStories);
  edgerazor::text::SentencePieceTokenizer tok(edgerazor::text::read_sentencepiece_model(kStories + "/tokenizer.model"));
  std::ifstream in(kData + "/text/tinystories-valid-sample.txt");
  std::string text(4000, '\0');
  in.read(text.data(), text.size());
  text.resize(in.gcount());
  std::vector<int32_t> tokens = tok.encode(text);
  ASSERT_GT(tokens.size(), 300u);
  tokens.resize(300);

  // Windows of 100 = BOS + 99 text tokens; the naive pass computes the same NLL.
  PerplexityOptions po;
  po.seq_len = 100;
  po.bos_id = 1;
  po.batch_size = 2;
  const PerplexityResult r = evaluate_perplexity(*model, tokens, po);
  double nll = 0.0;
  int64_t count = 0;
  for (size_t begin = 0; begin < tokens.size(); begin += 99) {
    std::vector<int64_t> window = {1};
    for (size_t i = begin; i < std::min(tokens.size(), begin + 99); ++i) window.push_back(tokens[i]);
    const at::Tensor logits = naive_llama_logits(weights, model->config, window);
    const at::Tensor logp = at::log_softmax(logits, 1);
    for (size_t t = 0; t + 1 < window.size(); ++t) nll -= logp[t][window[t + 1]].item<double>();
    count += static_cast<int64_t>(window.size()) - 1;
    if (begin == 0) {  // the logits themselves agree
      at::NoGradGuard g;
      const at::Tensor ours = model->forward(ids_tensor(window)).logits[0].to(at::kDouble);
      EXPECT_LT((ours - logits).abs().max().item<double>(), 1e-4);
    }
  }
  EXPECT_EQ(r.tokens, 300);
  EXPECT_EQ(r.windows, 4);
  EXPECT_EQ(count, 300);
  EXPECT_NEAR(r.mean_nll, nll / count, 1e-5);
  EXPECT_GT(r.mean_nll, 0.8);  // a trained model on in-domain text
  EXPECT_LT(r.mean_nll, 2.0);
  EXPECT_NEAR(r.perplexity, std::exp(r.mean_nll), 1e-9);
}

TEST(StoriesModel, KvCacheMatchesFullForward) {
  auto model = edgerazor::io::load_pretrained(kStories);
  at::NoGradGuard g;
  const std::vector<int64_t> ids = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376};
  const at::Tensor full = model->forward(ids_tensor(ids)).logits;  // (1, 10, V)
  KVCache cache;
  ForwardOptions fo;
  fo.cache = &cache;
  const at::Tensor first = model->forward(ids_tensor({ids.begin(), ids.begin() + 4}), fo).logits;
  std::vector<at::Tensor> parts = {first};
  for (size_t i = 4; i < ids.size(); ++i) parts.push_back(model->forward(ids_tensor({ids[i]}), fo).logits);
  EXPECT_EQ(cache.length(), 10);
  EXPECT_TRUE(at::allclose(at::cat(parts, 1), full, 1e-5, 1e-5));
}

TEST(StoriesModel, LeftPaddingGivesTheSameLogits) {
  auto model = edgerazor::io::load_pretrained(kStories);
  at::NoGradGuard g;
  const std::vector<int64_t> a = {1, 403, 407, 261, 378}, b = {1, 432, 383, 286, 261, 376, 298, 315};
  const at::Tensor la = model->forward(ids_tensor(a)).logits;
  const at::Tensor lb = model->forward(ids_tensor(b)).logits;
  // a left-padded to 8 with pad id 0.
  const at::Tensor batch = at::tensor(std::vector<int64_t>{0, 0, 0, 1, 403, 407, 261, 378, 1, 432, 383, 286, 261, 376, 298, 315},
                                      at::kLong).view({2, 8});
  ForwardOptions fo;
  fo.attention_mask = at::tensor(std::vector<int64_t>{0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, at::kLong).view({2, 8});
  const at::Tensor out = model->forward(batch, fo).logits;
  EXPECT_FALSE(at::isnan(out).any().item<bool>());
  EXPECT_TRUE(at::allclose(out[0].narrow(0, 3, 5), la[0], 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(out[1], lb[0], 1e-5, 1e-5));
}

TEST(StoriesModel, HiddenStates) {
  auto model = edgerazor::io::load_pretrained(kStories);
  at::NoGradGuard g;
  const at::Tensor ids = ids_tensor({1, 403, 407, 261});
  ForwardOptions fo;
  fo.output_hidden_states = true;
  const auto out = model->forward(ids, fo);
  ASSERT_EQ(out.hidden_states.size(), 6u);  // L + 1
  for (const auto& h : out.hidden_states) EXPECT_EQ(h.sizes(), (std::vector<int64_t>{1, 4, 64}));
  EXPECT_TRUE(at::equal(out.hidden_states[0], model->model->embed_tokens->weight.index_select(0, ids[0]).unsqueeze(0)));
  EXPECT_TRUE(at::allclose(model->logits_from_hidden(out.hidden_states[5]), out.logits));
  fo.compute_logits = false;
  EXPECT_FALSE(model->forward(ids, fo).logits.defined());
}

TEST(StoriesModel, SamplingIsSeededAndStopsAtEos) {
  auto model = edgerazor::io::load_pretrained(kStories);
  GenerationOptions o;
  o.temperature = 0.9;
  o.top_p = 0.9;
  o.seed = 7;
  o.max_new_tokens = 30;
  const auto a = generate(*model, {1}, o), b = generate(*model, {1}, o);
  EXPECT_EQ(a, b);
  o.seed = 8;
  EXPECT_NE(generate(*model, {1}, o), a);
  o.stop_ids = {a[3]};
  const auto stopped = generate(*model, {1}, o);
  EXPECT_EQ(stopped.back(), a[3]);
}

TEST(StoriesModel, BatchedGenerationEqualsOneAtATime) {
  auto model = edgerazor::io::load_pretrained(kStories);
  const std::vector<std::vector<int64_t>> prompts = {{1}, {1, 403, 407, 261, 378}, {1, 300}, {1, 403, 407}};
  std::vector<GenerationOptions> options(prompts.size());
  for (auto& o : options) {
    o.greedy = true;
    o.max_new_tokens = 40;
  }
  options[2].max_new_tokens = 7;  // rows end on their own
  options[3].greedy = false;      // a sampled row keeps its own generator
  options[3].temperature = 0.9;
  options[3].seed = 11;
  const auto batch = generate_batch(*model, prompts, options);
  ASSERT_EQ(batch.size(), prompts.size());
  for (size_t b = 0; b < prompts.size(); ++b) EXPECT_EQ(batch[b], generate(*model, prompts[b], options[b])) << "row " << b;
  EXPECT_EQ(batch[2].size(), 7u);
  // on_token ends one row early without touching the others.
  const auto cut = generate_batch(*model, prompts, options, [](size_t b, int64_t) { return b != 1; });
  EXPECT_EQ(cut[1].size(), 1u);
  EXPECT_EQ(cut[0], batch[0]);
}

TEST(Sampling, TopKKeepsOnlyTheKMostLikelyAndTopOneIsGreedy) {
  const at::Tensor logits = at::tensor({0.1, 2.0, -1.0, 1.5, 1.9, 0.0}, at::kDouble);
  GenerationOptions o;
  o.temperature = 5.0;  // flat: every token would be drawn without top-k
  o.top_k = 3;
  std::set<int64_t> drawn;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    uint64_t rng = seed;
    drawn.insert(select_token(logits, o, rng));
  }
  EXPECT_EQ(drawn, (std::set<int64_t>{1, 3, 4}));
  const auto d = sampling_distribution(logits, o);
  EXPECT_EQ(d.ids, (std::vector<int64_t>{1, 4, 3}));
  EXPECT_NEAR(d.probs[0] + d.probs[1] + d.probs[2], 1.0, 1e-12);
  o.top_k = 1;
  uint64_t rng = 3;
  EXPECT_EQ(select_token(logits, o, rng), 1);
}

TEST(Sampling, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  GenerationOptions o;
  o.greedy = true;
  o.repetition_penalty = 1.2;
  uint64_t rng = 0;
  EXPECT_EQ(select_token(at::tensor({2.0, 1.9}, at::kDouble), o, rng, {0}), 1);    // 2.0 / 1.2 < 1.9
  EXPECT_EQ(select_token(at::tensor({-1.0, -1.1}, at::kDouble), o, rng, {0}), 1);  // -1.2 < -1.1
  EXPECT_EQ(select_token(at::tensor({2.0, 1.9}, at::kDouble), o, rng, {1}), 0);
}

TEST(Sampling, FindStopStringTakesTheEarliest) {
  size_t length = 0;
  EXPECT_EQ(find_stop_string("Once upon a time. The end", {"The end", "."}, length), 16u);
  EXPECT_EQ(length, 1u);
  EXPECT_EQ(find_stop_string("no stop here", {"STOP", ""}, length), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
ModelConfig tiny_config(Architecture arch, bool tied) {
  ModelConfig c;
  c.architecture = arch;
  c.vocab_size = 96;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = arch == Architecture::kQwen3 ? 16 : 8;  // Qwen3: head_dim * H != hidden
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1e6;
  c.tie_word_embeddings = tied;
  c.qk_norm = arch == Architecture::kQwen3;
  c.attention_bias = arch == Architecture::kQwen2;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

class TinyModels : public ::testing::TestWithParam<std::tuple<Architecture, bool>> {};

TEST_P(TinyModels, SaveReloadIdenticalLogitsAndBackward) {
  const auto [arch, tied] = GetParam();
  at::manual_seed(1234);
  CausalLM model(tiny_config(arch, tied));
  // Random norms and biases too, so every tensor matters for the reload check.
  {
    at::NoGradGuard g;
    for (auto& p : model->parameters()) p.add_(at::randn_like(p) * 0.05);
  }
  const fs::path dir = temp_dir(std::string(architecture_name(arch)) + (tied ? "_tied" : "_untied"));
  edgerazor::io::save_pretrained(*model, dir.string());

  // The folder is what Hugging Face expects.
  const auto file = edgerazor::io::SafetensorsFile::open((dir / "model.safetensors").string());
  EXPECT_EQ(file->find("lm_head.weight") == nullptr, tied);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_NE(file->find("model.layers.1.mlp.gate_proj.weight"), nullptr);
  EXPECT_EQ(file->find("model.layers.0.self_attn.q_norm.weight") != nullptr, arch == Architecture::kQwen3);
  EXPECT_EQ(file->find("model.layers.0.self_attn.q_proj.bias") != nullptr, arch == Architecture::kQwen2);
  EXPECT_EQ(file->find("model.layers.0.self_attn.o_proj.bias"), nullptr);
  std::ifstream cfg(dir / "config.json");
  const auto j = nlohmann::json::parse(cfg);
  EXPECT_EQ(j["model_type"], architecture_name(arch));
  EXPECT_EQ(j["tie_word_embeddings"], tied);
  EXPECT_EQ(j["head_dim"], model->config.head_dim);

  auto reloaded = edgerazor::io::load_pretrained(dir.string());
  const at::Tensor ids = at::randint(0, 96, {2, 7}, at::kLong);
  {
    at::NoGradGuard g;
    EXPECT_TRUE(at::equal(model->forward(ids).logits, reloaded->forward(ids).logits));
  }
  if (tied)
    EXPECT_EQ(reloaded->lm_head->weight.unsafeGetTensorImpl(), reloaded->model->embed_tokens->weight.unsafeGetTensorImpl());

  // Forward/backward: every parameter gets a finite, non-zero gradient.
  reloaded->train();
  const auto out = reloaded->forward(ids);
  const at::Tensor loss = at::cross_entropy_loss(out.logits.view({-1, 96}).narrow(0, 0, 13), ids.view({-1}).narrow(0, 1, 13));
  loss.backward();
  for (const auto& p : reloaded->named_parameters(true)) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(at::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Architectures, TinyModels,
                         ::testing::Values(std::make_tuple(Architecture::kQwen3, true),
                                           std::make_tuple(Architecture::kQwen3, false),
                                           std::make_tuple(Architecture::kQwen2, false),
                                           std::make_tuple(Architecture::kLlama, true)));

TEST(TinyModel, GradientCheckpointingGivesTheSameGradients) {
  at::manual_seed(3);
  CausalLM model(tiny_config(Architecture::kQwen3, true));
  const at::Tensor ids = at::randint(0, 96, {2, 9}, at::kLong);
  auto grads = [&](bool checkpointing) {
    model->zero_grad();
    model->set_gradient_checkpointing(checkpointing);
    model->train();
    ForwardOptions fo;
    fo.output_hidden_states = true;
    const auto out = model->forward(ids, fo);
    (out.logits.pow(2).mean() + out.hidden_states[1].pow(2).mean()).backward();
    std::vector<at::Tensor> g;
    for (const auto& p : model->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  const auto plain = grads(false), recomputed = grads(true);
  ASSERT_EQ(plain.size(), recomputed.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(at::allclose(plain[i], recomputed[i], 1e-5, 1e-6)) << i;
}

// Backward runs on the autograd engine's thread, where the forward's (thread-local) autocast is
// off: the recompute must re-enter bf16 autocast, else its gradients differ from the plain run.
TEST(TinyModel, GradientCheckpointingKeepsBf16Autocast) {
  at::manual_seed(4);
  CausalLM model(tiny_config(Architecture::kLlama, true));
  const at::Tensor ids = at::randint(0, 96, {2, 9}, at::kLong);
  auto grads = [&](bool checkpointing) {
    model->zero_grad();
    model->set_gradient_checkpointing(checkpointing);
    model->train();
    at::Tensor loss;
    {
      at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
      at::autocast::set_autocast_enabled(at::kCPU, true);
      loss = model->forward(ids).logits.to(at::kFloat).pow(2).mean();
      at::autocast::set_autocast_enabled(at::kCPU, false);
      at::autocast::clear_cache();
    }
    loss.backward();
    std::vector<at::Tensor> g;
    for (const auto& p : model->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  const auto plain = grads(false), recomputed = grads(true);
  ASSERT_EQ(plain.size(), recomputed.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(at::equal(plain[i], recomputed[i])) << i;
}

TEST(TinyModel, Bfloat16ForwardIsCloseToFloat32) {
  at::manual_seed(5);
  CausalLM model(tiny_config(Architecture::kQwen3, false));
  const at::Tensor ids = at::randint(0, 96, {1, 6}, at::kLong);
  at::NoGradGuard g;
  const at::Tensor f32 = model->forward(ids).logits;
  model->to(at::kBFloat16);
  const at::Tensor bf16 = model->forward(ids).logits;
  EXPECT_EQ(bf16.scalar_type(), at::kBFloat16);
  EXPECT_LT((bf16.to(at::kFloat) - f32).abs().max().item<double>(), 0.05);
}

TEST(HfFolder, BadCheckpointsNameTheTensor) {
  at::manual_seed(9);
  CausalLM model(tiny_config(Architecture::kLlama, false));
  const fs::path dir = temp_dir("bad");
  edgerazor::io::save_pretrained(*model, dir.string());
  auto tensors = edgerazor::io::load_safetensors(dir.string());
  auto rewrite = [&](std::map<std::string, at::Tensor> t) {
    edgerazor::io::NamedTensors list(t.begin(), t.end());
    edgerazor::io::save_safetensors((dir / "model.safetensors").string(), list);
  };
  auto expect = [&](const std::vector<std::string>& parts) {
    try {
      edgerazor::io::load_pretrained(dir.string());
      FAIL() << "no error";
    } catch (const FormatError& e) {
      for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
    }
  };
  auto missing = tensors;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  rewrite(missing);
  expect({"model.safetensors", "'model.layers.1.mlp.up_proj.weight'", "missing"});
  auto shaped = tensors;
  shaped["model.norm.weight"] = at::ones({31});
  rewrite(shaped);
  expect({"model.safetensors", "'model.norm.weight'", "wrong shape; expected [32], got [31]"});
  auto extra = tensors;
  extra["model.layers.0.self_attn.q_norm.weight"] = at::ones({8});
  rewrite(extra);
  expect({"unexpected tensor 'model.layers.0.self_attn.q_norm.weight'"});
  // A truncated file fails cleanly.
  rewrite(tensors);
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 100);
  expect({"model.safetensors", "truncated"});
  // A bad config.json is a ConfigError naming the file.
  std::ofstream(dir / "config.json") << "{\"model_type\": \"bert\"}";
  EXPECT_THROW(edgerazor::io::load_pretrained(dir.string()), edgerazor::ConfigError);
  fs::remove_all(dir);
}

TEST(HfFolder, ShardedSaveWithTokenizerFiles) {
  auto model = edgerazor::io::load_pretrained(kStories);
  const fs::path dir = temp_dir("sharded");
  edgerazor::io::SaveOptions so;
  so.max_shard_bytes = 400 * 1024;
  so.tokenizer_source_dir = kStories;
  so.dtype = at::kBFloat16;
  edgerazor::io::save_pretrained(*model, dir.string(), so);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(dir / "tokenizer.model"));
  EXPECT_TRUE(fs::exists(dir / "tokenizer_config.json"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  std::ifstream cfg(dir / "config.json");
  EXPECT_EQ(nlohmann::json::parse(cfg)["torch_dtype"], "bfloat16");
  auto back = edgerazor::io::load_pretrained(dir.string());
  at::NoGradGuard g;
  const at::Tensor ids = ids_tensor({1, 403, 407});
  EXPECT_TRUE(at::equal(back->forward(ids).logits,
                        [&] {
                          model->to(at::kBFloat16);
                          model->to(at::kFloat);
                          return model->forward(ids).logits;
                        }()));
  fs::remove_all(dir);
}

}  // namespace

// The shapes an export streams without building the model are the built model's, in its order.
TEST(CheckpointShapes, DecoderLayerOfAName) {
  EXPECT_EQ(decoder_layer_of("model.layers.0.self_attn.q_proj.weight"), 0);
  EXPECT_EQ(decoder_layer_of("model.layers.27.mlp.down_proj.weight"), 27);
  EXPECT_EQ(decoder_layer_of("model.embed_tokens.weight"), -1);
  EXPECT_EQ(decoder_layer_of("model.norm.weight"), -1);
  EXPECT_EQ(decoder_layer_of("lm_head.weight"), -1);
  EXPECT_EQ(decoder_layer_of("model.layers."), -1);
}

TEST(CheckpointShapes, EqualTheBuiltModelsTensorsForEveryArchitecture) {
  using edgerazor::model::Architecture;
  for (int variant = 0; variant < 5; ++variant) {
    edgerazor::model::ModelConfig c;
    c.architecture = variant < 2 ? Architecture::kLlama : variant < 4 ? Architecture::kQwen2 : Architecture::kQwen3;
    c.vocab_size = 40;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = variant == 4 ? 8 : 4;
    c.tie_word_embeddings = variant % 2 == 0;
    c.attention_bias = variant >= 2 && variant < 4;
    c.o_proj_bias = variant == 1;
    c.mlp_bias = variant == 1;
    c.qk_norm = variant == 4;
    edgerazor::model::CausalLM model(c);
    const auto built = edgerazor::io::checkpoint_tensors(*model);
    const auto described = edgerazor::model::checkpoint_shapes(c);
    ASSERT_EQ(described.size(), built.size()) << "variant " << variant;
    for (size_t i = 0; i < built.size(); ++i) {
      EXPECT_EQ(described[i].name, built[i].first) << "variant " << variant;
      EXPECT_EQ(described[i].shape, std::vector<int64_t>(built[i].second.sizes().begin(), built[i].second.sizes().end()))
          << built[i].first;
    }
  }
}
