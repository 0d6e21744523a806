// The model zoo against Hugging Face transformers itself: tiny random Llama (tied and untied),
// Qwen2 (q/k/v biases) and Qwen3 (q/k norms, explicit head_dim) models that transformers builds
// and saves with save_pretrained (tests/reference/hf_tiny_models.py). Loaded here in float64, our
// mean NLL of a 96-token sequence equals transformers' float64 forward within 1e-6 relative, and
// our 40 greedy tokens (KV cache) are transformers' generate() output, token for token.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "edgerazor/io/hf_model.h"
#include "edgerazor/model/generation.h"
#include "fixtures/python_reference.h"

namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class HfParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("er_hf_parity_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const auto python = edgerazor_test::reference_python(skip_);
    if (!python) return;
    const auto r = edgerazor_test::run(*python + " " + edgerazor_test::reference_dir() + "/hf_tiny_models.py " +
                                       dir_.string());
    if (r.code != 0) throw std::runtime_error("hf_tiny_models.py failed:\n" + r.err);
    std::ifstream in(dir_ / "reference.json");
    reference_ = json::parse(in);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override {
    if (reference_.is_null()) GTEST_SKIP() << skip_;
  }
  static inline fs::path dir_;
  static inline json reference_;
  static inline std::string skip_;
};

TEST_F(HfParity, Float64NllMatchesTransformers) {
  ASSERT_EQ(reference_["models"].size(), 4u);
  for (const json& m : reference_["models"]) {
    SCOPED_TRACE(m["name"].get<std::string>());
    edgerazor::io::LoadOptions options;
    options.dtype = at::kDouble;
    auto model = edgerazor::io::load_pretrained(m["dir"].get<std::string>(), options);
    model->eval();
    at::NoGradGuard no_grad;
    const auto ids = m["ids"].get<std::vector<int64_t>>();
    const at::Tensor input = at::tensor(ids, at::kLong).view({1, -1});
    const at::Tensor logits = model->forward(input).logits[0];
    ASSERT_EQ(logits.scalar_type(), at::kDouble);
    const int64_t T = static_cast<int64_t>(ids.size());
    const double ours =
        at::cross_entropy_loss(logits.slice(0, 0, T - 1), input[0].slice(0, 1, T)).item<double>();
    const double theirs = m["nll"].get<double>();
    EXPECT_NEAR(ours, theirs, 1e-6 * std::abs(theirs)) << "ours " << ours << ", transformers " << theirs;
  }
}

TEST_F(HfParity, GreedyTokensMatchTransformersGenerate) {
  for (const json& m : reference_["models"]) {
    SCOPED_TRACE(m["name"].get<std::string>());
    edgerazor::io::LoadOptions options;
    options.dtype = at::kDouble;
    auto model = edgerazor::io::load_pretrained(m["dir"].get<std::string>(), options);
    edgerazor::model::GenerationOptions generation;
    generation.greedy = true;
    generation.max_new_tokens = 40;
    const auto ours = edgerazor::model::generate(*model, m["prompt"].get<std::vector<int64_t>>(), generation);
    EXPECT_EQ(ours, m["greedy"].get<std::vector<int64_t>>());
  }
}

// The decoding options as transformers defines them, on the real stories260K (float32):
// greedy with a repetition penalty token for token, and the candidates and probabilities of
// temperature + top-k + top-p (+ penalty) against its logits processors.
TEST_F(HfParity, RepetitionPenaltyTopKAndTopPMatchTransformersProcessors) {
  const std::string stories = std::string(edgerazor_test::shared_data_dir()) + "/models/stories260K-hf";
  const std::vector<int64_t> prompt{1, 403, 407, 261, 378, 432, 383, 286, 261};
  json request = {{"model_dir", stories}, {"prompt", prompt}, {"max_new_tokens", 60}, {"repetition_penalty", 1.3},
                  {"distribution", {{"temperature", 1.5}, {"top_k", 20}, {"top_p", 0.9}, {"repetition_penalty", 1.3}}}};
  const auto theirs = edgerazor_test::run_python_reference("hf_generate.py", request, skip_);
  ASSERT_TRUE(theirs.has_value()) << skip_;
  auto model = edgerazor::io::load_pretrained(stories);
  edgerazor::model::GenerationOptions o;
  o.greedy = true;
  o.max_new_tokens = 60;
  o.repetition_penalty = 1.3;
  const auto greedy = edgerazor::model::generate(*model, prompt, o);
  EXPECT_EQ(greedy, (*theirs)["greedy"].get<std::vector<int64_t>>());
  o.repetition_penalty = 1.0;
  EXPECT_NE(edgerazor::model::generate(*model, prompt, o), greedy) << "the penalty should change this story";

  o.greedy = false;
  o.temperature = 1.5;
  o.top_k = 20;
  o.top_p = 0.9;
  o.repetition_penalty = 1.3;
  at::Tensor logits;
  {
    at::NoGradGuard no_grad;
    model->eval();
    logits = model->forward(at::tensor(prompt, at::kLong).view({1, -1})).logits[0][-1];
  }
  const auto ours = edgerazor::model::sampling_distribution(logits, o, prompt);
  const auto& d = (*theirs)["distribution"];
  ASSERT_EQ(ours.ids, d["ids"].get<std::vector<int64_t>>());
  const auto probs = d["probs"].get<std::vector<double>>();
  EXPECT_GT(ours.ids.size(), 1u) << "choose options that keep several candidates";
  EXPECT_LE(ours.ids.size(), 20u);
  for (size_t i = 0; i < probs.size(); ++i) EXPECT_NEAR(ours.probs[i], probs[i], 1e-5) << "candidate " << i;
}

}  // namespace
