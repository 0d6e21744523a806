// DistillObjective on a tiny real torch::nn student/teacher: every loss alone trains the student
// (non-zero weight gradients) and never the teacher; parts and weights; LAFD layer reporting;
// attention / KV relation losses; option names and validation.
#include "edgerazor/distill/objective.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "edgerazor/core/error.h"
#include "edgerazor/distill/functional.h"
#include "edgerazor/distill/logit_loss.h"
#include "test_util.h"

namespace edgerazor::distill {
namespace {

using ::testing::HasSubstr;
using testing::lt;

constexpr int64_t kB = 2, kT = 6, kC = 8, kV = 17, kHeads = 2;

// Embedding -> 3 tanh layers -> lm_head; hidden_states has L+1 = 4 entries.
struct TinyModel {
  explicit TinyModel(int64_t seed) {
    at::manual_seed(seed);
    emb = torch::nn::Embedding(kV, kC);
    for (int i = 0; i < 3; ++i) layers.push_back(torch::nn::Linear(kC, kC));
    lm_head = torch::nn::Linear(torch::nn::LinearOptions(kC, kV).bias(false));
  }
  std::vector<at::Tensor> parameters() {
    std::vector<at::Tensor> p = emb->parameters();
    for (auto& l : layers)
      for (auto& t : l->parameters()) p.push_back(t);
    p.push_back(lm_head->weight);
    return p;
  }
  ModelOutputs run(const at::Tensor& ids, bool fused) {
    ModelOutputs out;
    auto h = emb(ids);
    out.hidden_states.push_back(h);
    for (auto& l : layers) {
      auto prev = h;
      h = at::tanh(l(h));
      out.hidden_states.push_back(h);
      // Per-layer attention maps and K/V from the layer input, split into heads: (B, H, T, D).
      auto heads = prev.reshape({kB, kT, kHeads, kC / kHeads}).transpose(1, 2);
      auto scores = at::matmul(heads, heads.transpose(-1, -2)) / std::sqrt(double(kC / kHeads));
      out.attentions.push_back(at::softmax(scores, -1));
      out.key_values.emplace_back(heads * 0.5, heads);
    }
    if (fused) {
      out.final_hidden = h;
      out.lm_head_weight = lm_head->weight;
    } else {
      out.logits = lm_head(h);
    }
    return out;
  }
  torch::nn::Embedding emb{nullptr};
  std::vector<torch::nn::Linear> layers;
  torch::nn::Linear lm_head{nullptr};
};

at::Tensor ids() { return lt({1, 5, 7, 2, 9, 3, 4, 4, 16, 0, 11, 12}, {kB, kT}); }
at::Tensor labels() { return lt({-100, -100, 7, 2, 9, 3, -100, 4, 16, 0, -100, -100}, {kB, kT}); }

DistillLossOptions loss_named(const std::string& name) {
  if (name == "attention_kl") {
    DistillLossOptions o;
    o.name = name;
    o.loss_type = LossType::attentions;
    o.loss_function = LossFunction::kld_confidence;
    o.layer_index = {"0", "2"};
    return o;
  }
  if (name == "kv_relation") {
    DistillLossOptions o;
    o.name = name;
    o.loss_type = LossType::past_key_values;
    o.loss_function = LossFunction::kld_forward;
    o.self_relation_distill_component = RelationComponent::both;
    o.layer_index = {"adaptive"};
    o.layer_index_adaptive_topk = 1;
    return o;
  }
  auto o = loss_preset(name);
  if (name == "mse") o.layer_index = {"low", "high"};
  o.temperature = 1.5;
  return o;
}

class EachLossAlone : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(EachLossAlone, GivesStudentGradientsAndNoTeacherGradients) {
  const auto& [name, fused] = GetParam();
  TinyModel student(1), teacher(2);
  DistillObjectiveOptions o;
  o.loss_task_alpha = 0.0;   // the loss alone
  o.chunk_size = 4;
  o.losses = {loss_named(name)};
  DistillObjective objective(o);
  // The teacher runs WITH grad mode on: the objective itself must keep it out of the graph.
  const auto out = objective(student.run(ids(), fused), teacher.run(ids(), fused), labels());
  ASSERT_TRUE(out.total.requires_grad()) << name;
  EXPECT_GT(out.total.item<double>(), 0.0) << name;
  out.total.backward();
  double student_grad = 0.0;
  for (auto& p : student.parameters())
    if (p.grad().defined()) student_grad += p.grad().abs().sum().item<double>();
  EXPECT_GT(student_grad, 0.0) << name << ": no gradient reached the student";
  // The lm_head weight gets a gradient from logit losses (through the fused function too).
  if (o.losses[0].loss_type == LossType::logits) {
    ASSERT_TRUE(student.lm_head->weight.grad().defined()) << name;
    EXPECT_GT(student.lm_head->weight.grad().abs().sum().item<double>(), 0.0) << name;
  }
  for (auto& p : teacher.parameters())
    EXPECT_FALSE(p.grad().defined()) << name << ": the teacher received a gradient";
}

INSTANTIATE_TEST_SUITE_P(
    Distill, EachLossAlone,
    ::testing::Combine(::testing::Values("forward_kl", "reverse_kl", "eakld", "cakld", "mse", "lafd",
                                         "attention_kl", "kv_relation"),
                       ::testing::Bool()),
    [](const auto& info) {
      return std::get<0>(info.param) + (std::get<1>(info.param) ? "_fused" : "_logits");
    });

TEST(Objective, PaperSettingPartsAndTotal) {
  TinyModel student(3), teacher(4);
  DistillObjectiveOptions o;
  o.loss_task_alpha = 0.1;
  auto kd = loss_preset("eakld");
  kd.alpha = 2.0;
  kd.temperature = 1.0;
  kd.confidence_k = 16;
  auto fd = loss_preset("lafd");
  fd.alpha = 0.1;
  o.losses = {kd, fd};
  DistillObjective objective(o);
  const auto s = student.run(ids(), true), t = teacher.run(ids(), true);
  const auto out = objective(s, t, labels());
  std::vector<std::string> names;
  std::map<std::string, double> p;
  for (const auto& part : out.parts) {
    names.push_back(part.first);
    p[part.first] = part.second.item<double>();
    EXPECT_FALSE(part.second.requires_grad()) << part.first;
    EXPECT_EQ(part.second.dim(), 0) << part.first;
  }
  const auto chosen = select_adaptive_layers(t.hidden_states, LayerMetric::cosine_similarity, 3);
  ASSERT_EQ(chosen.size(), 3u);
  const auto layer = [](int64_t j) { return "lafd.layer_" + std::to_string(j); };
  EXPECT_EQ(names, (std::vector<std::string>{"task_ce", "eakld", "eakld.gamma", "lafd", layer(chosen[0]), layer(chosen[1]),
                                             layer(chosen[2]), "distill"}));
  EXPECT_NEAR(out.total.item<double>(), 0.1 * p["task_ce"] + 2.0 * p["eakld"] + 0.1 * p["lafd"], 1e-5);
  EXPECT_NEAR(p["distill"], 2.0 * p["eakld"] + 0.1 * p["lafd"], 1e-5);
  // Each part equals the free function on the same inputs.
  const auto s_logits = s.logits_source().materialize(), t_logits = t.logits_source().materialize();
  EXPECT_NEAR(p["task_ce"], causal_lm_cross_entropy(s_logits, labels(), -100).item<double>(), 1e-5);
  const auto mask = position_mask(labels(), MaskAlignment::next_token, -100);
  const auto gamma = entropy_gamma(t_logits, mask, 16);
  EXPECT_NEAR(p["eakld.gamma"], gamma.item<double>(), 1e-6);
  EXPECT_NEAR(p["eakld"],
              confidence_kl(s_logits, t_logits, mask, 1.0, Reduction::batch_mean, gamma).item<double>(), 1e-5);
  ASSERT_EQ(objective->last_layer_choices().size(), 1u);
  EXPECT_EQ(objective->last_layer_choices()[0].second, chosen);
  const auto fmask = position_mask(labels(), MaskAlignment::same_token, -100);
  double lafd = 0.0;
  for (const auto j : chosen) {  // each chosen layer's part is its own loss
    const double mse = masked_mse(s.hidden_states[j], t.hidden_states[j], fmask, Reduction::batch_mean).item<double>();
    EXPECT_NEAR(p[layer(j)], mse, 1e-6) << "layer " << j;
    lafd += mse;
  }
  EXPECT_NEAR(p["lafd"], lafd / 3, 1e-6);
}

TEST(Objective, PrecomputedTaskLossAndSkippedFeatureLoss) {
  TinyModel student(5), teacher(6);
  DistillObjectiveOptions o;
  o.loss_task_alpha = 0.5;
  auto fd = loss_preset("mse");
  fd.layer_index = {"99"};   // no such layer: skipped with a warning (spec §4.2)
  o.losses = {fd};
  DistillObjective objective(o);
  auto s = student.run(ids(), false);
  s.task_loss = at::full({}, 3.0);
  const auto out = objective(s, teacher.run(ids(), false), labels());
  EXPECT_DOUBLE_EQ(out.total.item<double>(), 1.5);
  ASSERT_EQ(out.parts.size(), 2u);
  EXPECT_EQ(out.parts[0].first, "task_ce");
  EXPECT_EQ(out.parts[1].first, "distill");
  EXPECT_DOUBLE_EQ(out.parts[1].second.item<double>(), 0.0);
}

TEST(Objective, MissingInputsAreErrors) {
  TinyModel student(7), teacher(8);
  DistillObjectiveOptions o;
  o.losses = {loss_preset("lafd")};
  DistillObjective objective(o);
  auto s = student.run(ids(), false), t = teacher.run(ids(), false);
  t.hidden_states.clear();
  EXPECT_THROW(objective(s, t, labels()), c10::Error);
  EXPECT_THROW(objective(s, teacher.run(ids(), false), at::Tensor()), c10::Error);   // CE needs labels
}

TEST(Options, NamesAliasesAndPresets) {
  DistillLossOptions o;
  apply_loss_name(o, "kldc");
  EXPECT_EQ(o.loss_function, LossFunction::kld_confidence);
  apply_loss_name(o, "compute_fd");
  EXPECT_EQ(o.loss_function, LossFunction::mse);
  apply_loss_name(o, "kldr");
  EXPECT_EQ(o.loss_function, LossFunction::kld_reverse);
  EXPECT_EQ(friendly_name(loss_preset("eakld")), "eakld");
  EXPECT_EQ(friendly_name(loss_preset("cakld")), "cakld");
  EXPECT_FALSE(loss_preset("cakld").use_entropy);
  EXPECT_EQ(friendly_name(loss_preset("lafd")), "lafd");
  EXPECT_EQ(loss_preset("lafd").layer_index, std::vector<std::string>{"adaptive"});
  EXPECT_EQ(friendly_name(loss_preset("compute_kld_forward")), "forward_kl");
  // Reference defaults (spec §2.2).
  const DistillLossOptions d;
  EXPECT_EQ(d.loss_function, LossFunction::kld_reverse);
  EXPECT_DOUBLE_EQ(d.alpha, 0.5);
  EXPECT_DOUBLE_EQ(d.temperature, 2.0);
  EXPECT_EQ(d.confidence_k, 5);
  EXPECT_EQ(d.layer_index_adaptive_topk, 3);
  try {
    apply_loss_name(o, "jsd");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("'jsd'"));
    EXPECT_THAT(e.what(), HasSubstr("eakld"));
  }
  EXPECT_EQ(parse_mask_alignment("reference"), MaskAlignment::same_token);
  EXPECT_EQ(parse_mask_alignment("shifted"), MaskAlignment::next_token);
  EXPECT_THROW(parse_reduction("avg"), std::invalid_argument);
  EXPECT_EQ(parse_layer_metric("variance"), LayerMetric::variance);
}

TEST(Options, ValidationNamesTheKey) {
  auto bad = loss_preset("eakld");
  bad.name = "loss_1";
  bad.reduction = Reduction::none;
  EXPECT_THAT(validate(bad), HasSubstr("reduction"));
  auto mismatch = loss_preset("mse");
  mismatch.loss_function = LossFunction::kld_forward;
  EXPECT_THAT(validate(mismatch), HasSubstr("compute_mse"));
  auto layer = loss_preset("mse");
  layer.layer_index = {"middle"};
  EXPECT_THAT(validate(layer), HasSubstr("'middle'"));
  layer.layer_index = {};
  EXPECT_THAT(validate(layer), HasSubstr("layer_index"));
  EXPECT_EQ(validate(loss_preset("lafd")), "");

  DistillObjectiveOptions o;
  o.losses = {bad};
  try {
    DistillObjective objective(o);
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("loss_1.reduction"));
  }
  o.losses = {loss_preset("eakld"), loss_preset("eakld")};
  EXPECT_THROW(DistillObjective{o}, ConfigError);
}

}  // namespace
}  // namespace edgerazor::distill
