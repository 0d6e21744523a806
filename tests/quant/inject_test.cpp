// Injection into an unmodified torch::nn transformer with tied embeddings: forward/backward/
// optimizer steps move the latent weights while the forward pass sees weights on the grid.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/conv.h>
#include <torch/optim/adamw.h>

#include "edgerazor/config/quant_presets.h"
#include "edgerazor/core/error.h"
#include "edgerazor/quant/hooks.h"
#include "edgerazor/quant/inject.h"
#include "edgerazor/quant/module_types.h"
#include "edgerazor/quant/weight_quantizer.h"

namespace edgerazor::quant {
namespace {

using ::testing::HasSubstr;

// Reaches the protected parameter table to tie lm_head to the embedding (1.13 has no
// unregister_parameter).
struct ParameterTable : torch::nn::Module {
  static torch::OrderedDict<std::string, at::Tensor>& of(torch::nn::Module& m) {
    return m.*(&ParameterTable::parameters_);
  }
};

// Legend: B batch, T tokens, C hidden, V vocab.
struct TinyAttentionImpl : torch::nn::Module {
  TinyAttentionImpl(int64_t c) {
    q_proj = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
    k_proj = register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
    v_proj = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
    o_proj = register_module("o_proj", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
  }
  at::Tensor forward(const at::Tensor& x /*(B,T,C)*/) {
    at::Tensor q = q_proj(quantize_input(*q_proj, x));
    at::Tensor k = quantize_kv(*this, k_proj(quantize_input(*k_proj, x)));
    at::Tensor v = quantize_kv(*this, v_proj(quantize_input(*v_proj, x)));
    const int64_t t = x.size(1);
    at::Tensor scores = at::matmul(q, k.transpose(1, 2)) / std::sqrt(static_cast<double>(x.size(2)));
    scores = scores.masked_fill(at::ones({t, t}, at::kBool).triu(1), -1e9);
    at::Tensor y = at::matmul(scores.softmax(-1), v);
    return o_proj(quantize_input(*o_proj, y));
  }
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(TinyAttention);

struct TinyLayerImpl : torch::nn::Module {
  TinyLayerImpl(int64_t c, int64_t f) {
    self_attn = register_module("self_attn", TinyAttention(c));
    up_proj = register_module("up_proj", torch::nn::Linear(torch::nn::LinearOptions(c, f).bias(false)));
    down_proj = register_module("down_proj", torch::nn::Linear(torch::nn::LinearOptions(f, c).bias(false)));
    norm = register_parameter("input_layernorm_weight", at::ones({c}));
  }
  at::Tensor forward(at::Tensor x) {
    x = x + self_attn->forward(x * norm);
    return x + down_proj(quantize_input(*down_proj, at::gelu(up_proj(quantize_input(*up_proj, x)))));
  }
  TinyAttention self_attn{nullptr};
  torch::nn::Linear up_proj{nullptr}, down_proj{nullptr};
  at::Tensor norm;
};
TORCH_MODULE(TinyLayer);

struct TinyLmImpl : torch::nn::Module {
  TinyLmImpl(int64_t v, int64_t c, int64_t f, int64_t layers) {
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(v, c));
    blocks = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) blocks->push_back(TinyLayer(c, f));
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(c, v).bias(false)));
    lm_head->weight = embed_tokens->weight;  // tied, like HF tie_weights()
    ParameterTable::of(*lm_head)["weight"] = embed_tokens->weight;
  }
  at::Tensor forward(const at::Tensor& ids /*(B,T)*/) {
    at::Tensor x = embed_tokens(ids);
    for (const auto& layer : *blocks) x = layer->as<TinyLayerImpl>()->forward(x);
    return lm_head(quantize_input(*lm_head, x));  // (B,T,V)
  }
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Linear lm_head{nullptr};
};
TORCH_MODULE(TinyLm);

struct RegisterTinyAttention {
  RegisterTinyAttention() {
    register_attention_type([](const torch::nn::Module& m) { return m.as<TinyAttentionImpl>() != nullptr; });
  }
};
const RegisterTinyAttention g_register;

// Each block of B values holds at most {-s, 0, s} (ternary) or {-7s..7s} (INT4).
bool on_ternary_grid(const at::Tensor& w, int64_t block) {
  const at::Tensor blocks = w.reshape({-1, block});
  const at::Tensor s = blocks.abs().amax(-1, true);
  return at::logical_or(blocks.eq(0), blocks.abs().eq(s)).all().item<bool>();
}

TEST(Inject, PresetOnTiedTransformerTrains) {
  at::manual_seed(0);
  TinyLm model(96, 64, 128, 2);
  const auto report = inject(*model, config::preset("w1.58a8kv8_embint4_mobilellm"));  // blocks 64/64/64

  // 2 layers x 6 Linears + embedding (lm_head shares it, counted once).
  EXPECT_EQ(report.rows.size(), 13u);
  EXPECT_EQ(report.kv_modules.size(), 2u);
  EXPECT_EQ(report.total_params, 96 * 64 + 2 * (4 * 64 * 64 + 2 * 64 * 128 + 64));
  EXPECT_EQ(report.quantized_params, 96 * 64 + 2 * (4 * 64 * 64 + 2 * 64 * 128));
  EXPECT_NEAR(report.coverage(), 1.0 - 128.0 / report.total_params, 1e-12);
  EXPECT_THAT(report.to_text(), HasSubstr("ternary linear B=64 +A"));
  EXPECT_THAT(report.to_text(), HasSubstr("int4 embedding B=64"));
  ASSERT_NE(find_weight_quantizer(*model->lm_head), nullptr);
  EXPECT_EQ(find_weight_quantizer(*model->lm_head)->weight.function,
            "weight_quant_uniform_symmetric_absmax_per_block_int4");

  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-2));
  const at::Tensor ids = at::randint(0, 96, {2, 8});
  const at::Tensor targets = at::randint(0, 96, {2, 8});
  const at::Tensor q_latent_before = model->blocks[0]->as<TinyLayerImpl>()->self_attn->q_proj->weight.detach().clone();
  const at::Tensor emb_latent_before = model->embed_tokens->weight.detach().clone();

  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    {
      QuantizedWeightsScope quantized(*model);
      EXPECT_EQ(quantized.swapped(), 13u);  // the tied weight once
      auto* layer = model->blocks[0]->as<TinyLayerImpl>();
      const at::Tensor q_w = layer->self_attn->q_proj->weight;
      EXPECT_TRUE(on_ternary_grid(q_w, 64)) << "step " << step;
      EXPECT_TRUE(at::equal(model->lm_head->weight, model->embed_tokens->weight));
      // The INT4 embedding holds codes * scale: dividing by each block's scale gives integers.
      const at::Tensor emb = model->embed_tokens->weight.detach().reshape({-1, 64});
      const at::Tensor emb_codes = emb / (emb.abs().amax(-1, true) / 7);
      EXPECT_TRUE(at::allclose(emb_codes, emb_codes.round(), 0, 1e-4));
      const at::Tensor logits = model->forward(ids);
      const at::Tensor loss = at::cross_entropy_loss(logits.reshape({-1, 96}), targets.reshape({-1}));
      loss.backward();
    }
    // Latent weights are back (not on the grid) and got a gradient.
    auto* layer = model->blocks[0]->as<TinyLayerImpl>();
    EXPECT_FALSE(on_ternary_grid(layer->self_attn->q_proj->weight, 64));
    ASSERT_TRUE(layer->self_attn->q_proj->weight.grad().defined());
    EXPECT_GT(layer->self_attn->q_proj->weight.grad().abs().sum().item<float>(), 0.f);
    EXPECT_GT(model->embed_tokens->weight.grad().abs().sum().item<float>(), 0.f);
    optimizer.step();
  }
  auto* layer = model->blocks[0]->as<TinyLayerImpl>();
  EXPECT_FALSE(at::equal(layer->self_attn->q_proj->weight, q_latent_before));
  EXPECT_FALSE(at::equal(model->embed_tokens->weight, emb_latent_before));
  EXPECT_EQ(model->lm_head->weight.unsafeGetTensorImpl(), model->embed_tokens->weight.unsafeGetTensorImpl());
}

TEST(Inject, GradientIsStraightThrough) {
  // d(sum(W_q x))/dW_q with the scope == the plain gradient at Q(W): identity STE.
  at::manual_seed(3);
  torch::nn::Linear linear(torch::nn::LinearOptions(64, 8).bias(false));
  config::QuantConfig cfg = config::preset("w4a8");
  cfg.function.w_block_size = 32;
  inject(*linear, cfg);
  const at::Tensor x = at::randn({4, 64});
  {
    QuantizedWeightsScope scope(*linear);
    linear(x).pow(2).sum().backward();
  }
  const at::Tensor q = find_weight_quantizer(*linear)->fake_quantize(linear->weight.detach());
  const at::Tensor expected = 2 * at::matmul(at::matmul(x, q.t()).t(), x);
  EXPECT_TRUE(at::allclose(linear->weight.grad(), expected, 1e-5, 1e-5));
}

TEST(Inject, ActivationAndKvHooksQuantizeOnTheGrid) {
  TinyAttention attention(64);
  config::QuantConfig cfg = config::preset("w1.58a8kv8_mobilellm");
  inject(*attention, cfg);
  ASSERT_TRUE(has_kv_quantizer(*attention));
  const at::Tensor x = at::randn({2, 3, 64}).set_requires_grad(true);
  const at::Tensor xq = quantize_input(*attention->q_proj, x);
  // Every block of 64 holds integers times max/127.
  const at::Tensor s = x.detach().abs().amax(-1, true) / 127;
  EXPECT_TRUE(at::allclose(xq.detach() / s, (xq.detach() / s).round(), 0, 1e-3));
  xq.sum().backward();
  EXPECT_TRUE(at::equal(x.grad(), at::ones_like(x)));  // straight through
  const at::Tensor kv = at::randn({1, 2, 3, 64});
  EXPECT_FALSE(at::equal(quantize_kv(*attention, kv), kv));
  torch::nn::Linear plain(4, 4);
  EXPECT_TRUE(at::equal(quantize_input(*plain, kv), kv));  // nothing attached: identity
}

TEST(Inject, SharedInputIsQuantizedOncePerSpec) {
  TinyAttention attention(64);
  config::QuantConfig cfg = config::preset("w1.58a8kv8_mobilellm");
  cfg.overrides.push_back({});
  cfg.overrides.back().name = ".*v_proj";
  cfg.overrides.back().a_block_size = 32;  // a different A8 spec than q/k
  inject(*attention, cfg);
  const at::Tensor x = at::randn({2, 3, 64}).set_requires_grad(true);
  const auto in = quantize_shared_input({attention->q_proj.get(), attention->k_proj.get(), attention->v_proj.get()}, x);
  ASSERT_EQ(in.size(), 3u);
  EXPECT_TRUE(in[0].is_same(in[1]));                            // q and k share one A8
  EXPECT_FALSE(in[2].is_same(in[0]));                           // v has its own
  EXPECT_TRUE(at::equal(in[0], quantize_input(*attention->q_proj, x)));
  EXPECT_TRUE(at::equal(in[2], quantize_input(*attention->v_proj, x)));
  torch::nn::Linear plain(64, 64);
  const auto mixed = quantize_shared_input({plain.get(), attention->q_proj.get()}, x);
  EXPECT_TRUE(mixed[0].is_same(x));                              // nothing attached: the input
  EXPECT_TRUE(at::equal(mixed[1], in[0]));
  (in[0].sum() + in[1].sum() + in[2].sum()).backward();
  EXPECT_TRUE(at::equal(x.grad(), at::full_like(x, 3.0)));     // straight through, once per use
}

TEST(Inject, SelectionRules) {
  TinyLm model(64, 64, 128, 2);
  config::QuantConfig cfg = config::preset("w4a8");
  cfg.select.target_types = {"lin.*"};                   // regex fullmatched against type keys
  cfg.select.exclude_names = {"layers\\.1\\."};          // exclusion wins, anchored at start
  cfg.select.target_names = {"embed_tokens"};
  cfg.overrides.push_back({});
  cfg.overrides.back().name = ".*down_proj";
  cfg.overrides.back().w_block_size = 32;
  inject(*model, cfg);
  EXPECT_NE(find_weight_quantizer(*model->blocks[0]->as<TinyLayerImpl>()->up_proj), nullptr);
  EXPECT_EQ(find_weight_quantizer(*model->blocks[1]->as<TinyLayerImpl>()->up_proj), nullptr);
  EXPECT_NE(find_weight_quantizer(*model->embed_tokens), nullptr);
  EXPECT_EQ(find_weight_quantizer(*model->blocks[0]->as<TinyLayerImpl>()->down_proj)->weight.block_size, 32);
  EXPECT_EQ(find_weight_quantizer(*model->blocks[0]->as<TinyLayerImpl>()->up_proj)->weight.block_size, 64);
  // Re-injecting replaces what was attached.
  inject(*model, config::preset("a8kv8"));
  EXPECT_EQ(find_weight_quantizer(*model->embed_tokens), nullptr);
  EXPECT_EQ(coverage_report(*model).quantized_params, 0);
}

TEST(Inject, BadSettingsNameTheSetting) {
  TinyLm model(64, 64, 128, 1);
  auto expect_error = [&](const config::QuantConfig& cfg, const std::string& text) {
    try {
      inject(*model, cfg);
      ADD_FAILURE() << "no error for " << text;
    } catch (const ConfigError& e) {
      EXPECT_THAT(e.what(), HasSubstr(text));
    }
  };
  config::QuantConfig block = config::preset("w1.58a8kv8");  // B = 256 does not divide 64
  expect_error(block, "w_block_size 256 does not divide the row length 64");
  config::QuantConfig unused = config::preset("w4a8kv8_embint4");
  unused.overrides.push_back({});
  unused.overrides.back().name = "no_such_module";
  expect_error(unused, "matches no quantized module");
  config::QuantConfig regex = config::preset("w4a8kv8");
  regex.select.exclude_names = {"(unclosed"};
  expect_error(regex, "does not compile");
  config::QuantConfig type = config::preset("w4a8kv8");
  type.select.target_types = {"transformer"};
  expect_error(type, "matches no module type");
  config::QuantConfig fn = config::preset("w4a8kv8");
  fn.function.weight_function = "weight_quant_int3";
  expect_error(fn, "weight_function: unknown function 'weight_quant_int3'");
  config::QuantConfig prop = config::preset("w1.88a8kv8_mobilellm");
  prop.function.w_mixed_precision_prop = 1.5;
  expect_error(prop, "w_mixed_precision_prop: must be in (0, 1]");
  config::QuantConfig tied = config::preset("w4a8kv8");
  tied.overrides.push_back({});
  tied.overrides.back().name = "lm_head";
  tied.overrides.back().weight_function = "weight_quant_uniform_symmetric_clip_per_block_int1_58";
  expect_error(tied, "share one (tied) weight");
}

TEST(Inject, StrictBlocksOffLetsBlocksSpanRows) {
  TinyLm model(64, 64, 96, 1);  // down_proj rows are 96 wide; blocks of 64
  config::QuantConfig cfg = config::preset("w4a8kv8");
  EXPECT_THROW(inject(*model, cfg), ConfigError);
  cfg.strict_blocks = false;
  const auto report = inject(*model, cfg);
  auto* down = model->blocks[0]->as<TinyLayerImpl>()->down_proj.get();
  ASSERT_NE(find_weight_quantizer(*down), nullptr);
  QuantizedWeightsScope scope(*model);
  // (64, 96) as 96 blocks of 64 in row-major order (spec §1.1 case 2).
  const at::Tensor blocks = down->weight.reshape({-1, 64});
  const at::Tensor codes = blocks / (blocks.abs().amax(-1, true) / 7);
  EXPECT_TRUE(at::allclose(codes, codes.round(), 0, 1e-4));
  config::QuantConfig mixed = config::preset("w1.88a8kv8_mobilellm");
  mixed.strict_blocks = false;
  try {
    inject(*model, mixed);
    ADD_FAILURE() << "mixed precision across rows must fail";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("mixed precision needs whole blocks in every row"));
  }
}

TEST(Inject, UserModuleTypeAndConv) {
  struct ScaleImpl : torch::nn::Module {
    ScaleImpl() { weight = register_parameter("weight", at::randn({8, 32})); }
    at::Tensor weight;
  };
  register_module_type("scale", [](const torch::nn::Module& m) { return dynamic_cast<const ScaleImpl*>(&m) != nullptr; });
  auto root = std::make_shared<torch::nn::Module>();
  auto scale = root->register_module("scale", std::make_shared<ScaleImpl>());
  auto conv = root->register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 8, 2)));
  config::QuantConfig cfg = config::preset("w4a8");
  cfg.select.target_types = {"scale", "conv2d"};
  cfg.function.w_block_size = 16;
  const auto report = inject(*root, cfg);
  EXPECT_EQ(report.rows.size(), 2u);
  QuantizedWeightsScope scope(*root);
  EXPECT_EQ(scope.swapped(), 2u);
  // Conv weight (8,4,2,2) is quantized as (8, 16): one INT4 block per output channel.
  const at::Tensor w = conv->weight.reshape({8, 16});
  const at::Tensor s = w.abs().amax(-1, true) / 7;
  EXPECT_TRUE(at::allclose(w / s, (w / s).round(), 0, 1e-4));
}

TEST(Inject, ApplyQuantizedWeightsAndEval) {
  TinyLm model(64, 64, 128, 1);
  inject(*model, config::preset("w4a8kv8"));
  const at::Tensor ids = at::randint(0, 64, {1, 5});
  at::Tensor expected;
  {
    model->eval();
    QuantizedWeightsScope scope(*model);
    expected = model->forward(ids);
  }
  apply_quantized_weights(*model);  // bake Q(w) in; eval then keeps the stored weights
  QuantizedWeightsScope scope(*model);
  EXPECT_EQ(scope.swapped(), 0u);
  EXPECT_TRUE(at::allclose(model->forward(ids), expected, 1e-5, 1e-5));
}

}  // namespace
}  // namespace edgerazor::quant
