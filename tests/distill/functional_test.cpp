// Spec distillation.md §14 test vectors (to 1e-6 relative or better), reductions, CE, MSE,
// LAFD selection and finite-difference gradient checks of the free functions.
#include "edgerazor/distill/functional.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "edgerazor/distill/logit_loss.h"
#include "test_util.h"

namespace edgerazor::distill {
namespace {

using testing::expect_close;
using testing::expect_rel;
using testing::numeric_grad;
using testing::spec_labels;
using testing::spec_student;
using testing::spec_teacher;
using testing::dt;
using testing::lt;

at::Tensor spec_mask() { return position_mask(spec_labels(), MaskAlignment::same_token, -100); }

double value(const at::Tensor& t) { return t.item<double>(); }

TEST(SpecVectors, LogitLosses_14_1) {
  const auto s = spec_student(), t = spec_teacher(), m = spec_mask();
  constexpr double rel = 1e-8;   // fp64 against the spec's fp64 values (given to 10 digits)
  expect_rel(value(forward_kl(s, t, m, 1.0, Reduction::batch_mean)), 0.4273528049, rel, "KLfwd T1");
  expect_rel(value(reverse_kl(s, t, m, 1.0, Reduction::batch_mean)), 0.597619029, rel, "KLrev T1");
  expect_rel(value(forward_kl(s, t, m, 2.0, Reduction::batch_mean)), 0.7305002729, rel, "KLfwd T2");
  expect_rel(value(reverse_kl(s, t, m, 2.0, Reduction::batch_mean)), 0.7396983008, rel, "KLrev T2");
  expect_rel(value(forward_kl(s, t, m, 1.0, Reduction::mean)), 0.5488208793, rel, "KLfwd mean");
  expect_rel(value(forward_kl(s, t, m, 1.0, Reduction::sum)), 1.646462638, rel, "KLfwd sum");
  const auto g16 = entropy_gamma(t, m, 16), g5 = entropy_gamma(t, m, 5);
  expect_rel(value(g16), 0.812677544, rel, "gamma k16");
  expect_rel(value(g5), 0.6772984375, rel, "gamma k5");
  expect_rel(value(confidence_kl(s, t, m, 1.0, Reduction::batch_mean, g16)), 0.5657243417, rel,
             "EAKLD T1 k16");
  expect_rel(value(confidence_kl(s, t, m, 1.0, Reduction::batch_mean, g5)), 0.5426738524, rel,
             "EAKLD T1 k5");
  expect_rel(value(confidence_kl(s, t, m, 2.0, Reduction::batch_mean, g16)), 0.7379753037, rel,
             "EAKLD T2 k16");
}

TEST(SpecVectors, ClampSensitivity_14_2) {
  const auto s = spec_student(), t = spec_teacher(at::kDouble, true), m = spec_mask();
  constexpr double rel = 1e-8;
  expect_rel(value(forward_kl(s, t, m, 1.0, Reduction::batch_mean)), 0.5064962137, rel, "fwd T1");
  expect_rel(value(reverse_kl(s, t, m, 1.0, Reduction::batch_mean)), 2.039290658, rel, "rev T1");
  expect_rel(value(forward_kl(s, t, m, 2.0, Reduction::batch_mean)), 1.846237962, rel, "fwd T2");
  expect_rel(value(reverse_kl(s, t, m, 2.0, Reduction::batch_mean)), 12.05386876, rel, "rev T2");
  const auto g = entropy_gamma(t, m, 16);
  expect_rel(value(g), 0.8927830308, rel, "gamma k16");
  expect_rel(value(confidence_kl(s, t, m, 1.0, Reduction::batch_mean, g)), 1.874949083, rel, "EAKLD");
  // Token (1, 0): clamped reverse KL vs the unclamped textbook value (5 digits in the spec).
  const auto per_token = kl_per_token(t, s, 1.0);
  expect_rel(per_token[1][0].item<double>(), 2.96861, 2e-6, "clamped token KL");
  const auto unclamped = (at::softmax(s, -1) * (at::log_softmax(s, -1) - at::log_softmax(t, -1))).sum(-1);
  expect_rel(unclamped[1][0].item<double>(), 5.33258, 2e-6, "unclamped token KL");
}

// The module (fused chunked path and plain path) reproduces §14 in fp64 and fp32.
TEST(SpecVectors, ModulesMatchInBothPrecisions) {
  struct Case { const char* name; double temperature; int64_t k; double expected; bool clamp; };
  const Case cases[] = {{"forward_kl", 1.0, 5, 0.4273528049, false},
                        {"reverse_kl", 2.0, 5, 0.7396983008, false},
                        {"eakld", 1.0, 16, 0.5657243417, false},
                        {"eakld", 2.0, 16, 0.7379753037, false},
                        {"eakld", 1.0, 5, 0.5426738524, false},
                        {"reverse_kl", 1.0, 5, 2.039290658, true},
                        {"eakld", 1.0, 16, 1.874949083, true}};
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    for (const auto& c : cases) {
      for (const int64_t chunk : {0, 1, 4, 256}) {
        auto o = loss_preset(c.name);
        o.temperature = c.temperature;
        o.confidence_k = c.k;
        o.mask_alignment = MaskAlignment::same_token;   // the spec's vectors use the reference mask
        o.chunk_size = chunk;
        LogitDistillLoss loss(o);
        const auto out = loss(spec_student(dtype), spec_teacher(dtype, c.clamp), spec_labels());
        expect_rel(out.total.item<double>(), c.expected, dtype == at::kDouble ? 1e-8 : 1e-6,
                   (std::string(c.name) + " chunk " + std::to_string(chunk) +
                    (dtype == at::kDouble ? " fp64" : " fp32")).c_str());
      }
    }
  }
}

TEST(SpecVectors, Mse_14_3) {
  const auto hs = dt({1, 2, 0.5, -1, 3, 0, 0, 1, 2, 2, -1, 1}, {2, 3, 2});
  const auto ht = dt({1.5, 1, 0, 0, 2, 1, 1, 1, 9, 9, 9, 9}, {2, 3, 2});
  const auto m = spec_mask();
  expect_rel(value(masked_mse(hs, ht, m, Reduction::batch_mean)), 0.65625, 1e-12, "batch_mean");
  expect_rel(value(masked_mse(hs, ht, m, Reduction::sum)), 4.25, 1e-12, "sum");
  // mean quirk: denominator sum_b max(valid_b, 1) * H = (2 + 1) * 2
  expect_rel(value(masked_mse(hs, ht, m, Reduction::mean)), 4.25 / 6.0, 1e-12, "mean");
  // A sample without labels counts 1 in the mean's denominator and 0 in batch_mean's numerator.
  auto labels = spec_labels().clone();
  labels[1].fill_(-100);
  const auto m2 = position_mask(labels, MaskAlignment::same_token, -100);
  expect_rel(value(masked_mse(hs, ht, m2, Reduction::mean)), 3.25 / 6.0, 1e-12, "mean, empty row");
  expect_rel(value(masked_mse(hs, ht, m2, Reduction::batch_mean)), 0.8125 / 2, 1e-12, "batch_mean, empty row");
}

TEST(SpecVectors, AdaptiveSelection_14_4) {
  std::vector<at::Tensor> x = {
      dt({1, 0, 0, 1}, {1, 2, 2}, at::kFloat), dt({1, 0.1, 0.2, 1}, {1, 2, 2}, at::kFloat),
      dt({0, 1, 1, 0}, {1, 2, 2}, at::kFloat), dt({0.1, 1, 1, 0.1}, {1, 2, 2}, at::kFloat),
      dt({1, 1, 1, -1}, {1, 2, 2}, at::kFloat)};
  const auto m = layer_transition_metrics(x, LayerMetric::cosine_similarity);
  ASSERT_EQ(m.size(), 4u);
  expect_rel(m[0], 0.987808933, 1e-7, "m1");
  expect_rel(m[1], 0.1478099271, 1e-7, "m2");
  expect_rel(m[2], 0.9950371902, 1e-7, "m3");
  expect_rel(m[3], 0.7035975447, 1e-7, "m4");
  EXPECT_EQ(select_adaptive_layers(x, LayerMetric::cosine_similarity, 3), (std::vector<int64_t>{2, 4, 1}));
  EXPECT_EQ(select_adaptive_layers(x, LayerMetric::cosine_similarity, 10), (std::vector<int64_t>{2, 4, 1, 3}));
}

TEST(LayerSelection, TiesGoToLowerIndexAndDescendingMetrics) {
  const auto a = at::ones({2, 3, 4});
  std::vector<at::Tensor> x = {a, a, a * 2, a * 2};   // cos = 1 everywhere: ties
  EXPECT_EQ(select_adaptive_layers(x, LayerMetric::cosine_similarity, 2), (std::vector<int64_t>{1, 2}));
  // l2 descending: layers 2 and 3 have norm 4, layer 1 norm 2.
  EXPECT_EQ(select_adaptive_layers(x, LayerMetric::l2, 2), (std::vector<int64_t>{2, 3}));
  const auto m = layer_transition_metrics(x, LayerMetric::l2);
  EXPECT_DOUBLE_EQ(m[0], 2.0);
  EXPECT_DOUBLE_EQ(m[1], 4.0);
}

TEST(LayerSelection, FixedNames) {
  // Qwen3: L = 28, N = 29 -> low 1, mid 14, high 28; negatives count from the end.
  EXPECT_EQ(resolve_fixed_layers({"low", "mid", "high", "-1", "3"}, 29),
            (std::vector<int64_t>{1, 14, 28, 28, 3}));
  EXPECT_EQ(resolve_fixed_layers({"40", "-30", "2"}, 29), (std::vector<int64_t>{2}));
  EXPECT_EQ(resolve_fixed_layers({"low"}, 1), (std::vector<int64_t>{0}));
}

TEST(Masks, AlignmentAndTargets) {
  const auto labels = spec_labels();
  const auto same = position_mask(labels, MaskAlignment::same_token, -100);
  const auto next = position_mask(labels, MaskAlignment::next_token, -100);
  EXPECT_TRUE(at::equal(same, lt({0, 1, 1, 1, 0, 0}, {2, 3}).to(at::kBool)));
  EXPECT_TRUE(at::equal(next, lt({1, 1, 0, 0, 0, 0}, {2, 3}).to(at::kBool)));
  EXPECT_TRUE(at::equal(next_token_targets(labels, -100),
                        lt({5, 7, -100, -100, -100, -100}, {2, 3})));
  EXPECT_EQ(resolve_alignment(MaskAlignment::standard, LossType::logits), MaskAlignment::next_token);
  EXPECT_EQ(resolve_alignment(MaskAlignment::standard, LossType::hidden_states), MaskAlignment::same_token);
}

TEST(Reductions, WeightsReproduceReductionsAndNoLabels) {
  const auto v = at::arange(6, at::kDouble).reshape({2, 3}) + 1.0;   // 1..6
  const auto m = spec_mask();                                        // (0,1) (0,2) (1,0)
  EXPECT_DOUBLE_EQ(value(reduce_tokens(v, m, Reduction::sum)), 2 + 3 + 4);
  EXPECT_DOUBLE_EQ(value(reduce_tokens(v, m, Reduction::mean)), 9.0 / 3);
  EXPECT_DOUBLE_EQ(value(reduce_tokens(v, m, Reduction::batch_mean)), (5.0 / 2 + 4.0) / 2);
  EXPECT_DOUBLE_EQ(value(reduce_tokens(v, at::Tensor(), Reduction::batch_mean)), 3.5);
  EXPECT_DOUBLE_EQ(value(reduce_tokens(v, at::Tensor(), Reduction::sum)), 21.0);
  // An all-padding sample still counts in batch_mean's 1/B.
  auto empty = m.clone();
  empty[1].fill_(false);
  EXPECT_DOUBLE_EQ(value(reduce_tokens(v, empty, Reduction::batch_mean)), 2.5 / 2);
}

TEST(Gamma, CakldUsesTeacherProbabilityOfMaskedTargets) {
  const auto t = spec_teacher();
  const auto labels = lt({-100, 1, 2, 3, -100, -100}, {2, 3});
  const auto m = position_mask(labels, MaskAlignment::same_token, -100);
  const auto p = at::softmax(t, -1);
  const double expected = ((p[0][1][1] + p[0][2][2]).item<double>() / 2 + p[1][0][3].item<double>()) / 2;
  EXPECT_NEAR(value(confidence_gamma(t, labels, m)), expected, 1e-12);
  EXPECT_DOUBLE_EQ(value(confidence_gamma(t, labels, at::Tensor())), 0.5);
}

TEST(CrossEntropy, MatchesShiftedMeanOverValidTargets) {
  const auto logits = spec_student();
  const auto labels = lt({-100, 1, 2, 3, 0, -100}, {2, 3});
  const auto lp = at::log_softmax(logits, -1);
  // targets: (0,0)->1, (0,1)->2, (1,0)->0; (1,1)->-100; last positions never count.
  const double expected = -(lp[0][0][1] + lp[0][1][2] + lp[1][0][0]).item<double>() / 3;
  EXPECT_NEAR(value(causal_lm_cross_entropy(logits, labels, -100)), expected, 1e-12);
  EXPECT_DOUBLE_EQ(value(causal_lm_cross_entropy(logits, at::full({2, 3}, -100L), -100)), 0.0);
}

// ---- finite differences -------------------------------------------------------------------------

class FiniteDifference : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(7);
    student = at::randn({2, 3, 5}, at::kDouble) * 2;
    teacher = at::randn({2, 3, 5}, at::kDouble) * 2;
    labels = lt({-100, 1, 2, 4, 0, -100}, {2, 3});
    mask = position_mask(labels, MaskAlignment::next_token, -100);
  }
  void check(const std::function<at::Tensor(const at::Tensor&)>& loss, const char* what) {
    auto x = student.clone().requires_grad_(true);
    loss(x).backward();
    const auto numeric = numeric_grad([&](const at::Tensor& y) { return loss(y).item<double>(); }, student);
    expect_close(x.grad(), numeric, 1e-7, 1e-6, what);
    EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0) << what;
  }
  at::Tensor student, teacher, labels, mask;
};

TEST_F(FiniteDifference, KlFamilyAndCe) {
  for (const double temp : {1.0, 2.0}) {
    for (const auto red : {Reduction::batch_mean, Reduction::mean, Reduction::sum}) {
      check([&](const at::Tensor& s) { return forward_kl(s, teacher, mask, temp, red); }, "forward_kl");
      check([&](const at::Tensor& s) { return reverse_kl(s, teacher, mask, temp, red); }, "reverse_kl");
    }
  }
  const auto g = entropy_gamma(teacher, mask, 5);
  check([&](const at::Tensor& s) { return confidence_kl(s, teacher, mask, 1.0, Reduction::batch_mean, g); },
        "eakld");
  check([&](const at::Tensor& s) { return causal_lm_cross_entropy(s, labels, -100); }, "ce");
}

TEST_F(FiniteDifference, Mse) {
  const auto t = at::randn({2, 3, 5}, at::kDouble);
  const auto m = position_mask(labels, MaskAlignment::same_token, -100);
  for (const auto red : {Reduction::batch_mean, Reduction::mean, Reduction::sum})
    check([&](const at::Tensor& s) { return masked_mse(s, t, m, red); }, "mse");
}

}  // namespace
}  // namespace edgerazor::distill
