// The fused chunked path: equal to plain autograd (values and gradients) for every chunk size,
// from logits and from hidden states + lm_head weight, with padding masks; analytic gradients
// against finite differences; the teacher never receives a gradient.
#include "edgerazor/distill/fused_logit_loss.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "edgerazor/distill/functional.h"
#include "edgerazor/distill/logit_loss.h"
#include "edgerazor/distill/objective.h"
#include "test_util.h"

namespace edgerazor::distill {
namespace {

using testing::expect_close;
using testing::lt;
using testing::numeric_grad;

// B = 2, T = 5, V = 11; row 1 is mostly padding, one full-padding edge in row 0.
at::Tensor padded_labels() {
  return lt({-100, -100, 3, 7, 10, 2, -100, -100, -100, -100}, {2, 5});
}

struct Variant {
  std::string name;
  double temperature;
  Reduction reduction;
  MaskAlignment alignment;
};

std::vector<Variant> variants() {
  std::vector<Variant> out;
  for (const char* name : {"forward_kl", "reverse_kl", "eakld", "cakld"})
    for (const double t : {1.0, 2.0})
      for (const auto red : {Reduction::batch_mean, Reduction::mean, Reduction::sum})
        for (const auto al : {MaskAlignment::next_token, MaskAlignment::same_token})
          out.push_back({name, t, red, al});
  return out;
}

DistillLossOptions options_for(const Variant& v, int64_t chunk) {
  auto o = loss_preset(v.name);
  o.temperature = v.temperature;
  o.reduction = v.reduction;
  o.mask_alignment = v.alignment;
  o.confidence_k = 4;
  o.chunk_size = chunk;
  return o;
}

TEST(Fused, ChunkedEqualsUnchunkedFromLogits) {
  at::manual_seed(1);
  auto student = at::randn({2, 5, 11}, at::kDouble) * 3;
  auto teacher = at::randn({2, 5, 11}, at::kDouble) * 3;
  student[0][3][5] = 45.0;   // student probabilities < 1e-8 at a valid position: clamp active
  teacher[0][2][1] = 45.0;   // same for the teacher
  const auto labels = padded_labels();
  for (const auto& v : variants()) {
    auto x0 = student.clone().requires_grad_(true);
    const auto ref = LogitDistillLoss(options_for(v, 0))(x0, teacher, labels);
    ref.total.backward();
    for (const int64_t chunk : {1, 2, 3, 4, 7, 64}) {
      auto x = student.clone().requires_grad_(true);
      const auto out = LogitDistillLoss(options_for(v, chunk))(x, teacher, labels);
      out.total.backward();
      const auto what = v.name + " T" + std::to_string(v.temperature) + " " + to_string(v.reduction) +
                        " " + to_string(v.alignment) + " chunk " + std::to_string(chunk);
      expect_close(out.total, ref.total, 1e-12, 1e-10, what + " value");
      expect_close(x.grad(), x0.grad(), 1e-12, 1e-10, what + " grad");
      ASSERT_EQ(out.parts.size(), ref.parts.size()) << what;
      for (size_t i = 0; i < ref.parts.size(); ++i)
        expect_close(out.parts[i].second, ref.parts[i].second, 1e-12, 1e-10, what + " " + ref.parts[i].first);
    }
  }
}

// Objective: CE + EAKLD (T = 2) + forward KL (T = 1) in one fused pass, from hidden states and
// lm_head weights; gradients on hidden state and weight equal plain autograd for all chunk sizes.
TEST(Fused, ObjectiveFromHiddenStatesEqualsPlainAutograd) {
  at::manual_seed(2);
  const int64_t B = 2, T = 5, C = 6, V = 13;
  const auto hs = at::randn({B, T, C}, at::kDouble), ws = at::randn({V, C}, at::kDouble);
  const auto ht = at::randn({B, T, C + 2}, at::kDouble), wt = at::randn({V, C + 2}, at::kDouble);
  const auto labels = lt({-100, 4, 12, 0, 5, 9, 1, -100, -100, -100}, {B, T});
  DistillObjectiveOptions o;
  o.loss_task_alpha = 0.3;
  auto kd = loss_preset("eakld");
  kd.alpha = 2.0;
  kd.temperature = 2.0;
  auto fwd = loss_preset("forward_kl");
  fwd.alpha = 0.7;
  fwd.temperature = 1.0;
  fwd.reduction = Reduction::sum;
  o.losses = {kd, fwd};

  auto run = [&](int64_t chunk, at::Tensor& gh, at::Tensor& gw) {
    o.chunk_size = chunk;
    DistillObjective objective(o);
    auto h = hs.clone().requires_grad_(true), w = ws.clone().requires_grad_(true);
    ModelOutputs s, t;
    s.final_hidden = h;
    s.lm_head_weight = w;
    t.final_hidden = ht;
    t.lm_head_weight = wt;
    auto out = objective(s, t, labels);
    out.total.backward();
    gh = h.grad();
    gw = w.grad();
    return out;
  };
  at::Tensor gh0, gw0;
  const auto ref = run(0, gh0, gw0);
  for (const int64_t chunk : {1, 3, 4, 10, 1000}) {
    at::Tensor gh, gw;
    const auto out = run(chunk, gh, gw);
    const auto what = "chunk " + std::to_string(chunk);
    expect_close(out.total, ref.total, 1e-12, 1e-10, what + " total");
    expect_close(gh, gh0, 1e-12, 1e-10, what + " hidden grad");
    expect_close(gw, gw0, 1e-12, 1e-10, what + " weight grad");
    ASSERT_EQ(out.parts.size(), ref.parts.size());
    for (size_t i = 0; i < ref.parts.size(); ++i) {
      EXPECT_EQ(out.parts[i].first, ref.parts[i].first);
      expect_close(out.parts[i].second, ref.parts[i].second, 1e-12, 1e-10, what + " " + ref.parts[i].first);
    }
  }
  // The total is exactly the documented combination of the parts.
  std::map<std::string, double> p;
  for (const auto& part : ref.parts) p[part.first] = part.second.item<double>();
  EXPECT_NEAR(ref.total.item<double>(), 0.3 * p["task_ce"] + 2.0 * p["eakld"] + 0.7 * p["forward_kl"], 1e-12);
  EXPECT_NEAR(p["distill"], 2.0 * p["eakld"] + 0.7 * p["forward_kl"], 1e-12);
}

// Analytic gradients of the fused function (all outputs at once, with upstream weights) against
// central finite differences, including clamp-active positions (a very peaked teacher).
TEST(Fused, GradientsMatchFiniteDifferences) {
  at::manual_seed(3);
  const int64_t B = 2, T = 3, C = 4, V = 7;
  const auto h = at::randn({B, T, C}, at::kDouble), w = at::randn({V, C}, at::kDouble) * 2;
  auto teacher = at::randn({B, T, V}, at::kDouble) * 2;
  teacher[0][1][2] = 40.0;   // teacher probabilities < 1e-8: clamp active
  const auto labels = lt({1, 2, -100, 6, 0, 3}, {B, T});
  const auto mask = position_mask(labels, MaskAlignment::next_token, -100);
  FusedLogitRequest req;
  req.chunk_size = 2;
  req.ce_targets = next_token_targets(labels, -100);
  req.ce_weights = reduction_weights(req.ce_targets.ne(-100), B, T, Reduction::mean, at::kDouble);
  for (const double temp : {1.0, 0.5}) {
    FusedKLTerm term;
    term.temperature = temp;
    term.weights = reduction_weights(mask, B, T, Reduction::batch_mean, at::kDouble);
    term.forward = term.reverse = true;
    req.terms.push_back(term);
  }
  const std::vector<double> coef = {0.7, 1.3, -0.4, 0.9, 2.1};   // ce, fwd0, rev0, fwd1, rev1
  auto loss = [&](const at::Tensor& hidden, const at::Tensor& weight) {
    const auto r = fused_logit_losses(LogitsSource::from_hidden(hidden, weight), teacher, req);
    return r.ce * coef[0] + r.forward[0] * coef[1] + r.reverse[0] * coef[2] + r.forward[1] * coef[3] +
           r.reverse[1] * coef[4];
  };
  auto hv = h.clone().requires_grad_(true), wv = w.clone().requires_grad_(true);
  loss(hv, wv).backward();
  const auto nh = numeric_grad([&](const at::Tensor& x) { return loss(x, w).item<double>(); }, h);
  const auto nw = numeric_grad([&](const at::Tensor& x) { return loss(h, x).item<double>(); }, w);
  expect_close(hv.grad(), nh, 1e-7, 1e-6, "hidden grad");
  expect_close(wv.grad(), nw, 1e-7, 1e-6, "weight grad");
}

// Same with whole logits and a peaked student, so the student-side clamp (the "+1" term of the
// reverse-KL gradient) is exercised.
TEST(Fused, GradientsMatchFiniteDifferencesWithClampedStudent) {
  at::manual_seed(8);
  const int64_t B = 2, T = 3, V = 6;
  auto student = at::randn({B, T, V}, at::kDouble) * 2;
  student[0][0][3] = 40.0;
  student[1][1][0] = 35.0;
  const auto teacher = at::randn({B, T, V}, at::kDouble) * 2;
  const auto labels = lt({1, 2, 3, 4, 0, 5}, {B, T});
  const auto mask = position_mask(labels, MaskAlignment::same_token, -100);
  for (const double temp : {1.0, 2.0}) {
    FusedLogitRequest req;
    req.chunk_size = 4;
    FusedKLTerm term;
    term.temperature = temp;
    term.weights = reduction_weights(mask, B, T, Reduction::sum, at::kDouble);
    term.forward = term.reverse = true;
    req.terms.push_back(term);
    auto loss = [&](const at::Tensor& s) {
      const auto r = fused_logit_losses(s, teacher, req);
      return r.forward[0] * 0.6 + r.reverse[0] * 1.7;
    };
    auto x = student.clone().requires_grad_(true);
    loss(x).backward();
    const auto numeric = numeric_grad([&](const at::Tensor& s) { return loss(s).item<double>(); }, student);
    expect_close(x.grad(), numeric, 1e-7, 1e-6, "T=" + std::to_string(temp));
  }
}

// Logits at masked positions change neither the loss nor get a gradient; an all-padding batch
// gives 0 and a zero gradient.
TEST(Fused, PaddingPositionsAreInert) {
  at::manual_seed(4);
  const auto labels = padded_labels();
  const auto mask = position_mask(labels, MaskAlignment::next_token, -100);
  const auto student = at::randn({2, 5, 11}, at::kDouble);
  const auto teacher = at::randn({2, 5, 11}, at::kDouble);
  for (const char* name : {"forward_kl", "reverse_kl", "eakld"}) {
    auto o = loss_preset(name);
    o.chunk_size = 3;
    LogitDistillLoss loss(o);
    auto x = student.clone().requires_grad_(true);
    const auto base = loss(x, teacher, labels);
    base.total.backward();
    const auto pad = mask.logical_not().unsqueeze(-1);
    EXPECT_EQ(x.grad().masked_select(pad).abs().max().item<double>(), 0.0) << name;
    EXPECT_GT(x.grad().masked_select(pad.logical_not()).abs().max().item<double>(), 0.0) << name;
    const auto noisy = at::where(pad, student + at::randn_like(student) * 5, student);
    EXPECT_NEAR(loss(noisy, teacher, labels).total.item<double>(), base.total.item<double>(), 1e-12) << name;
    const auto all_pad = at::full({2, 5}, -100L);
    auto y = student.clone().requires_grad_(true);
    const auto empty = loss(y, teacher, all_pad);
    empty.total.backward();
    EXPECT_EQ(empty.total.item<double>(), 0.0) << name;
    EXPECT_EQ(y.grad().abs().max().item<double>(), 0.0) << name;
  }
}

TEST(Fused, ReducedPrecisionInputsMatchFp32Reference) {
  at::manual_seed(5);
  const int64_t B = 2, T = 8, C = 16, V = 50;
  const auto labels = at::randint(0, V, {B, T}, at::kLong);
  for (const auto dtype : {at::kBFloat16, at::kFloat}) {
    const auto hs = at::randn({B, T, C}).to(dtype), ws = (at::randn({V, C}) * 0.3).to(dtype);
    const auto ht = at::randn({B, T, C}).to(dtype), wt = (at::randn({V, C}) * 0.3).to(dtype);
    auto o = loss_preset("eakld");
    o.chunk_size = 5;
    auto h = hs.clone().requires_grad_(true), w = ws.clone().requires_grad_(true);
    const auto out = LogitDistillLoss(o)(LogitsSource::from_hidden(h, w), LogitsSource::from_hidden(ht, wt), labels);
    out.total.backward();
    EXPECT_EQ(h.grad().scalar_type(), dtype);
    EXPECT_EQ(w.grad().scalar_type(), dtype);
    // Reference: the same bf16/fp32 logits, upcast, plain autograd.
    o.chunk_size = 0;
    auto h0 = hs.clone().requires_grad_(true), w0 = ws.clone().requires_grad_(true);
    const auto ref = LogitDistillLoss(o)(LogitsSource::from_hidden(h0, w0), LogitsSource::from_hidden(ht, wt), labels);
    ref.total.backward();
    const double rtol = dtype == at::kBFloat16 ? 2e-2 : 1e-5;
    expect_close(out.total, ref.total, 1e-6, rtol, "value");
    expect_close(h.grad(), h0.grad(), 1e-4, rtol, "hidden grad");
    expect_close(w.grad(), w0.grad(), 1e-4, rtol, "weight grad");
  }
}

TEST(Fused, TeacherNeverGetsAGradient) {
  at::manual_seed(6);
  auto hs = at::randn({2, 4, 6}, at::kDouble).requires_grad_(true);
  auto ws = at::randn({9, 6}, at::kDouble).requires_grad_(true);
  auto ht = at::randn({2, 4, 6}, at::kDouble).requires_grad_(true);   // a careless caller
  auto wt = at::randn({9, 6}, at::kDouble).requires_grad_(true);
  const auto labels = lt({1, 2, 3, -100, 4, 5, -100, -100}, {2, 4});
  for (const int64_t chunk : {0, 3}) {
    auto o = loss_preset("eakld");
    o.chunk_size = chunk;
    LogitDistillLoss loss(o);
    loss(LogitsSource::from_hidden(hs, ws), LogitsSource::from_hidden(ht, wt), labels).total.backward();
    EXPECT_FALSE(ht.grad().defined()) << chunk;
    EXPECT_FALSE(wt.grad().defined()) << chunk;
    EXPECT_GT(hs.grad().abs().sum().item<double>(), 0.0) << chunk;
    EXPECT_GT(ws.grad().abs().sum().item<double>(), 0.0) << chunk;
  }
}

}  // namespace
}  // namespace edgerazor::distill
