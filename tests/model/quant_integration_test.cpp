// The model zoo under quant::inject(): A8 on every Linear, KV8 on the attention modules found
// through the kv_cache key, and both still applied in gradient-checkpointed recomputation and
// with the KV cache.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "edgerazor/config/quant_presets.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/quant/hooks.h"
#include "edgerazor/quant/inject.h"
#include "edgerazor/quant/module_types.h"
#include "edgerazor/quant/weight_quantizer.h"
#include "fixtures/tiny_models.h"

namespace {
using namespace edgerazor::model;

ModelConfig quantizable_config() {  // every in_features a multiple of the 64-wide blocks
  return edgerazor_test::tiny_qwen3_config(128, 64, 128, 2, 64);
}

TEST(QuantIntegration, InjectFindsEveryLinearAndAttention) {
  at::manual_seed(11);
  CausalLM model(quantizable_config());
  const at::Tensor ids = at::randint(0, 128, {2, 10}, at::kLong);
  at::Tensor plain;
  {
    at::NoGradGuard g;
    plain = model->forward(ids).logits;
  }
  auto layer0 = model->model->layers[0]->as<DecoderLayerImpl>();
  EXPECT_TRUE(edgerazor::quant::is_attention(*layer0->self_attn));
  const auto report = edgerazor::quant::inject(*model, edgerazor::config::preset("w1.58a8kv8_mobilellm"));
  EXPECT_EQ(report.kv_modules.size(), 2u);
  EXPECT_GE(report.rows.size(), 14u);  // 7 Linears per layer
  EXPECT_TRUE(edgerazor::quant::has_kv_quantizer(*layer0->self_attn));

  at::NoGradGuard g;
  edgerazor::quant::QuantizedWeightsScope scope(*model);
  const at::Tensor quantized = model->forward(ids).logits;
  EXPECT_FALSE(at::allclose(quantized, plain, 1e-3, 1e-3));
  EXPECT_TRUE(at::isfinite(quantized).all().item<bool>());

  // KV8 keys/values are per (token, head) blocks, so the cache gives the same logits.
  KVCache cache;
  ForwardOptions fo;
  fo.cache = &cache;
  const at::Tensor a = model->forward(ids.narrow(1, 0, 6), fo).logits;
  const at::Tensor b = model->forward(ids.narrow(1, 6, 4), fo).logits;
  EXPECT_TRUE(at::allclose(at::cat({a, b}, 1), quantized, 1e-4, 1e-4));
}

TEST(QuantIntegration, CheckpointingKeepsA8AndKv8InRecomputation) {
  at::manual_seed(12);
  CausalLM model(quantizable_config());
  edgerazor::quant::inject(*model, edgerazor::config::preset("w1.58a8kv8_mobilellm"));
  const at::Tensor ids = at::randint(0, 128, {2, 12}, at::kLong);
  auto grads = [&](bool checkpointing) {
    model->zero_grad();
    model->set_gradient_checkpointing(checkpointing);
    model->train();
    edgerazor::quant::QuantizedWeightsScope scope(*model);  // backward runs inside the scope
    const at::Tensor logits = model->forward(ids).logits;
    at::cross_entropy_loss(logits.reshape({-1, 128}), ids.reshape({-1})).backward();
    std::vector<at::Tensor> g;
    for (const auto& p : model->parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
    return g;
  };
  const auto plain = grads(false), recomputed = grads(true);
  ASSERT_EQ(plain.size(), recomputed.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(plain[i].defined(), recomputed[i].defined()) << i;
    if (plain[i].defined()) EXPECT_TRUE(at::allclose(plain[i], recomputed[i], 1e-4, 1e-5)) << i;
  }
}

// Deferred embedding rows: an untied, row-blocked embedding table stays latent in the scope and
// the lookup quantizes the gathered rows; values and gradients equal the swapped table's.
TEST(QuantIntegration, DeferredEmbeddingRowsEqualTheQuantizedTable) {
  at::manual_seed(13);
  ModelConfig config = quantizable_config();
  config.tie_word_embeddings = false;
  CausalLM model(config);
  edgerazor::quant::inject(*model, edgerazor::config::preset("w1.58a8kv8_mobilellm"));
  const auto* table_quantizer = edgerazor::quant::find_weight_quantizer(*model->model->embed_tokens);
  ASSERT_NE(table_quantizer, nullptr);
  const at::Tensor ids = at::randint(0, 128, {2, 12}, at::kLong);
  model->train();
  auto run = [&](bool defer) {
    model->zero_grad();
    edgerazor::quant::QuantizedWeightsScopeOptions options;
    options.defer_embedding_rows = defer;
    size_t swapped = 0;
    at::Tensor logits;
    {
      edgerazor::quant::QuantizedWeightsScope scope(*model, options);
      swapped = scope.swapped();
      EXPECT_EQ(table_quantizer->rows_deferred(), defer);
      logits = model->forward(ids).logits;
      at::cross_entropy_loss(logits.reshape({-1, 128}), ids.reshape({-1})).backward();
    }
    EXPECT_FALSE(table_quantizer->rows_deferred());  // reset when the scope ends
    std::vector<at::Tensor> g{logits.detach()};
    for (const auto& p : model->parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
    return std::make_pair(swapped, g);
  };
  const auto [swapped_plain, plain] = run(false);
  const auto [swapped_deferred, deferred] = run(true);
  EXPECT_EQ(swapped_deferred + 1, swapped_plain);  // the table was not swapped
  ASSERT_EQ(plain.size(), deferred.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(plain[i].defined(), deferred[i].defined()) << i;
    if (plain[i].defined()) EXPECT_TRUE(at::equal(plain[i], deferred[i])) << i;
  }
}

TEST(QuantIntegration, TiedEmbeddingIsNeverDeferred) {
  CausalLM model(quantizable_config());  // tie_word_embeddings: the lm_head needs the whole table
  edgerazor::quant::inject(*model, edgerazor::config::preset("w1.58a8kv8_mobilellm"));
  edgerazor::quant::QuantizedWeightsScopeOptions options;
  options.defer_embedding_rows = true;
  edgerazor::quant::QuantizedWeightsScope scope(*model, options);
  EXPECT_FALSE(edgerazor::quant::find_weight_quantizer(*model->model->embed_tokens)->rows_deferred());
}

}  // namespace
