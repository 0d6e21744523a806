// Task scoring runs the model as deployed: after PTQ (ternary weights, A8 activations, KV8 cache)
// the log-likelihoods move away from the float model's and equal a direct forward of the
// quantized model, with the shared-context KV reuse and without it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "edgerazor/config/quant_presets.h"
#include "edgerazor/model/task_model.h"
#include "edgerazor/quant/hooks.h"
#include "edgerazor/quant/inject.h"
#include "edgerazor/text/tokenizer.h"
#include "fixtures/temp_dir.h"

namespace {

using namespace edgerazor::model;

ModelConfig small_qwen3(int64_t vocab) {  // every in_features a multiple of the 64-wide blocks
  ModelConfig c;
  c.architecture = Architecture::kQwen3;
  c.vocab_size = vocab;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 64;
  c.qk_norm = true;
  c.tie_word_embeddings = true;
  c.rope_theta = 1e6;
  c.max_position_embeddings = 256;
  return c;
}

// log P(continuation | context) by one plain forward over context + continuation.
double direct_logprob(CausalLMImpl& model, const TaskLanguageModel& lm, const std::string& context, const std::string& continuation) {
  std::vector<int64_t> ctx = lm.encode(context), all = lm.encode(context + continuation);
  const int64_t n = static_cast<int64_t>(all.size()), c = static_cast<int64_t>(ctx.size());
  at::NoGradGuard g;
  const at::Tensor ids = at::tensor(all, at::kLong).view({1, n});
  const at::Tensor logprobs = at::log_softmax(model.forward(ids.narrow(1, 0, n - 1)).logits[0].to(at::kFloat), -1);
  double sum = 0;
  for (int64_t t = c; t < n; ++t) sum += logprobs[t - 1][all[static_cast<size_t>(t)]].item<double>();
  return sum;
}

TEST(QuantizedTaskModel, ScoresTheDeployedModel) {
  const auto tokenizer = edgerazor::text::load_tokenizer(edgerazor_test::kStories);
  at::manual_seed(5);
  CausalLM model(small_qwen3(tokenizer->vocab_size()));
  const std::vector<edgerazor::eval::LoglikelihoodRequest> requests = {
      {"Once upon a time, there was a little girl.", " She liked to play."},
      {"Once upon a time, there was a little girl.", " The car is red and very fast."},
      {"Once upon a time, there was a little girl.", " Dogs bark."},
      {"Tom had a big ball. ", "He threw it."}};
  TaskLanguageModel float_lm(*model, *tokenizer);
  const auto fp = float_lm.loglikelihood(requests, nullptr);

  edgerazor::quant::quantize_for_inference(*model, edgerazor::config::preset("w1.58a8kv8_mobilellm"));
  ASSERT_TRUE(edgerazor::quant::has_kv_quantizer(*model->model->layers->ptr(0)->as<DecoderLayerImpl>()->self_attn));
  TaskModelOptions no_sharing;
  no_sharing.share_context = false;
  TaskLanguageModel shared(*model, *tokenizer), unshared(*model, *tokenizer, no_sharing);
  const auto q_shared = shared.loglikelihood(requests, nullptr), q_plain = unshared.loglikelihood(requests, nullptr);
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(requests[i].continuation);
    // lm-eval moves a context's trailing spaces into the continuation before tokenizing.
    std::string context = requests[i].context, continuation = requests[i].continuation;
    while (!context.empty() && context.back() == ' ') continuation.insert(0, 1, ' '), context.pop_back();
    const double direct = direct_logprob(*model, shared, context, continuation);
    EXPECT_NEAR(q_shared[i].logprob, direct, 1e-4);
    EXPECT_NEAR(q_plain[i].logprob, direct, 1e-4);
    EXPECT_EQ(q_shared[i].is_greedy, q_plain[i].is_greedy);
    EXPECT_GT(std::abs(q_shared[i].logprob - fp[i].logprob), 1e-3) << "quantization should change the score";
  }
}

}  // namespace
