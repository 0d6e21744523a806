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
#include "edgerazor/eval/evaluator.h"
#include "edgerazor/train/task_eval.h"
#include "fixtures/temp_dir.h"
#include "fixtures/tiny_models.h"

namespace {

using namespace edgerazor::model;

ModelConfig small_qwen3(int64_t vocab) {  // every in_features a multiple of the 64-wide blocks
  ModelConfig c = edgerazor_test::tiny_qwen3_config(vocab, 64, 128, 2, 64);
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

// The trainer's task run (quantizers injected for training, latent float weights) scores the
// weights its step uses, Q(latent): the same as evaluating the PTQ-baked copy.
class TrainingTasks : public edgerazor_test::TempDirTest {};

TEST_F(TrainingTasks, ScoreTheQuantizedWeightsNotTheLatentOnes) {
  edgerazor_test::write_file(path("docs.jsonl"),
                             "{\"q\": \"Once upon a time\", \"c\": [\" there was\", \" the car\", \" blue\"], \"l\": 0}\n"
                             "{\"q\": \"Tom had a big\", \"c\": [\" ball\", \" sky\"], \"l\": 0}\n"
                             "{\"q\": \"She was very\", \"c\": [\" happy\", \" run\", \" the\"], \"l\": 0}\n");
  edgerazor_test::write_file(path("t.yaml"), "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: " + path("docs.jsonl") +
                                                 "\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: c\ndoc_to_target: l\n"
                                                 "metric_list:\n  - metric: acc\n  - metric: acc_mutual_info\n");
  // A perplexity task too: its value is continuous, so latent weights could not pass by chance.
  edgerazor_test::write_file(path("r.yaml"), "task: r\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: " + path("docs.jsonl") +
                                                 "\ntest_split: test\noutput_type: loglikelihood_rolling\ndoc_to_target: \"{{q}} and more words\"\n");
  const auto tokenizer = edgerazor::text::load_tokenizer(edgerazor_test::kStories);
  at::manual_seed(9);
  CausalLM training(small_qwen3(tokenizer->vocab_size()));
  CausalLM deployed = std::dynamic_pointer_cast<CausalLMImpl>(training->clone());
  const auto preset = edgerazor::config::preset("w1.58a8kv8_mobilellm");
  edgerazor::quant::inject(*training, preset);
  edgerazor::quant::quantize_for_inference(*deployed, preset);
  edgerazor::config::EvalSection section;
  section.tasks = {path("t.yaml"), path("r.yaml")};
  const auto during_training = edgerazor::train::TrainingTaskEval(section, edgerazor_test::kStories).run(*training);

  TaskLanguageModel lm(*deployed, *tokenizer);
  edgerazor::eval::EvaluationOptions o;
  o.log_samples = true;
  const auto out = edgerazor::eval::evaluate_tasks(
      lm, {edgerazor::eval::load_task_config(path("t.yaml")), edgerazor::eval::load_task_config(path("r.yaml"))}, o);
  ASSERT_EQ(during_training.size(), 7u);  // t: acc, acc_mutual_info and their stderr; r: 3 perplexities (stderr N/A)
  for (const auto& [name, value] : during_training) {
    const std::string task = name.substr(0, name.find('/')), key = name.substr(name.find('/') + 1);
    EXPECT_NEAR(value, out.results["results"][task][key].get<double>(), 1e-9 * std::max(1.0, std::abs(value))) << name;
  }
  // And the latent weights really are restored afterwards (training goes on from them).
  for (const auto& [name, p] : training->unique_named_parameters())
    if (name.find("q_proj.weight") != std::string::npos) EXPECT_GT(p.abs().max().item<double>(), 0.0);
}

}  // namespace
