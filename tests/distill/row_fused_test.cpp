// The row-fused CE + KL kernel (row_fused_loss.h) against the general chunked path
// (fused_logit_losses) and through DistillObjective with the kernel switched on and off: values,
// gamma, gradients of the student hidden state and lm_head weight, upstream-gradient scaling, and
// what it declines.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "edgerazor/distill/functional.h"
#include "edgerazor/distill/logit_loss.h"
#include "edgerazor/distill/objective.h"
#include "edgerazor/distill/row_fused_loss.h"
#include "edgerazor/train/precision.h"

namespace {

namespace d = edgerazor::distill;

double rel(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kFloat) - b.to(at::kFloat)).norm() / b.to(at::kFloat).norm().clamp_min(1e-30)).item<double>();
}

struct Inputs {
  int64_t B = 2, T = 37, C = 48, V = 1001;
  at::Tensor hs, ws, ht, wt, labels;
  explicit Inputs(at::ScalarType dtype) {
    at::manual_seed(3);
    const auto opts = at::TensorOptions().dtype(dtype);
    hs = at::randn({B, T, C}, opts);
    ws = (at::randn({V, C}) * 0.3).to(dtype);
    ht = at::randn({B, T, C}, opts);
    wt = (at::randn({V, C}) * 0.3).to(dtype);
    labels = at::randint(0, V, {B, T}, at::kLong);
    labels.narrow(1, 0, 5).fill_(-100);  // a prompt
  }
};

d::DistillLossOptions eakld() {
  auto kd = d::loss_preset("eakld");
  kd.temperature = 1.0;
  kd.confidence_k = 16;
  kd.alpha = 2.0;
  return kd;
}

d::FusedLogitRequest request_for(const Inputs& in, const d::DistillLossOptions& kd, bool with_ce) {
  d::FusedLogitRequest request;
  request.chunk_size = 16;  // several chunks, the last one partial
  if (with_ce) {
    request.ce_targets = d::next_token_targets(in.labels, -100);
    request.ce_weights =
        d::reduction_weights(request.ce_targets.ne(-100), in.B, in.T, d::Reduction::mean, at::kFloat);
  }
  request.terms.push_back(d::make_logit_term(kd, in.labels, in.B, in.T, at::TensorOptions().dtype(at::kFloat)));
  return request;
}

// Direct comparison: total = c_ce CE + c_f KLf + c_r KLr with fixed coefficients, both paths.
void check_against_general_path(at::ScalarType dtype, const d::DistillLossOptions& kd, bool with_ce, double tol) {
  const Inputs in(dtype);
  const auto request = request_for(in, kd, with_ce);
  const d::RowFusedCoefficients c{0.1, 1.3, 0.7};
  auto run = [&](bool row_fused) {
    const at::Tensor h = in.hs.clone().requires_grad_(true), w = in.ws.clone().requires_grad_(true);
    const auto s = d::LogitsSource::from_hidden(h, w), t = d::LogitsSource::from_hidden(in.ht, in.wt);
    std::vector<at::Tensor> v;
    if (row_fused) {
      EXPECT_TRUE(d::row_fused_supported(s, t, request));
      double seen_stat = -1.0;
      const auto r = d::row_fused_losses(s, t, request, [&](double stat) {
        seen_stat = stat;
        return c;
      });
      (r.total * 3.0).backward();  // the upstream gradient scales the stored gradients
      EXPECT_NEAR(seen_stat, r.stat.item<double>(), 1e-6 * std::abs(seen_stat) + 1e-12);
      v = {r.ce, r.forward, r.reverse, r.stat, r.total};
    } else {
      const auto r = d::fused_logit_losses(s, t, request);
      const at::Tensor fwd = kd.loss_function == d::LossFunction::kld_reverse ? r.forward[0] * 0 : r.forward[0];
      const at::Tensor rev = kd.loss_function == d::LossFunction::kld_forward ? r.reverse[0] * 0 : r.reverse[0];
      const at::Tensor total = r.ce * (with_ce ? c.ce : 0.0) + fwd * c.forward + rev * c.reverse;
      (total * 3.0).backward();
      v = {r.ce, r.forward[0], r.reverse[0], r.gamma_stat[0], total};
    }
    v.push_back(h.grad());
    v.push_back(w.grad());
    return v;
  };
  const auto ref = run(false), got = run(true);
  const char* names[] = {"ce", "forward", "reverse", "entropy", "total", "grad_hidden", "grad_weight"};
  for (size_t i = 0; i < ref.size(); ++i) {
    if (ref[i].abs().sum().item<double>() == 0.0) {
      EXPECT_EQ(got[i].abs().sum().item<double>(), 0.0) << names[i];
      continue;
    }
    EXPECT_LT(rel(got[i], ref[i]), tol) << names[i];
  }
  EXPECT_EQ(got[5].scalar_type(), dtype);
  EXPECT_EQ(got[6].scalar_type(), dtype);
}

TEST(RowFused, EakldWithCeMatchesGeneralPathFp32) { check_against_general_path(at::kFloat, eakld(), true, 2e-5); }
TEST(RowFused, EakldWithCeMatchesGeneralPathBf16) { check_against_general_path(at::kBFloat16, eakld(), true, 2e-2); }
TEST(RowFused, ForwardKlWithoutCeMatchesGeneralPath) {
  auto kd = d::loss_preset("forward_kl");
  kd.temperature = 1.0;
  check_against_general_path(at::kFloat, kd, false, 2e-5);
}
TEST(RowFused, ReverseKlMatchesGeneralPath) {
  auto kd = d::loss_preset("reverse_kl");
  kd.temperature = 1.0;
  check_against_general_path(at::kFloat, kd, true, 2e-5);
}

// The objective (0.1 CE + 2 EAKLD + 0.1 LAFD) gives the same total, parts and gradients with the
// kernel on and off.
void check_objective(at::ScalarType dtype, double tol) {
  const Inputs in(dtype);
  const int64_t L = 3;
  std::vector<at::Tensor> s_hidden_base, t_hidden;
  for (int64_t l = 0; l <= L; ++l) {
    s_hidden_base.push_back(at::randn({in.B, in.T, in.C}).to(dtype));
    t_hidden.push_back(at::randn({in.B, in.T, in.C}).to(dtype));
  }
  auto run = [&](bool row_fused) {
    d::DistillObjectiveOptions o;
    o.loss_task_alpha = 0.1;
    auto fd = d::loss_preset("lafd");
    fd.alpha = 0.1;
    o.losses = {eakld(), fd};
    o.chunk_size = 16;
    o.row_fused = row_fused;
    d::DistillObjective objective(o);
    const at::Tensor h = in.hs.clone().requires_grad_(true), w = in.ws.clone().requires_grad_(true);
    std::vector<at::Tensor> sh;
    for (const auto& x : s_hidden_base) sh.push_back(x.clone().requires_grad_(true));
    d::ModelOutputs s, t;
    s.hidden_states = sh;
    s.final_hidden = h;
    s.lm_head_weight = w;
    t.hidden_states = t_hidden;
    t.final_hidden = in.ht;
    t.lm_head_weight = in.wt;
    const auto out = objective(s, t, in.labels);
    out.total.backward();
    std::vector<at::Tensor> v{out.total.detach(), h.grad(), w.grad(), sh[1].grad()};
    std::vector<std::string> names{"total", "grad_hidden", "grad_weight", "grad_layer_1"};
    for (const auto& part : out.parts) {
      v.push_back(part.second);
      names.push_back(part.first);
    }
    return std::make_pair(v, names);
  };
  const auto [ref, ref_names] = run(false);
  const auto [got, got_names] = run(true);
  ASSERT_EQ(ref_names, got_names);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_LT(rel(got[i], ref[i]), tol) << ref_names[i];
}

TEST(RowFused, ObjectiveSameWithKernelOnAndOffFp32) { check_objective(at::kFloat, 2e-5); }
TEST(RowFused, ObjectiveSameWithKernelOnAndOffBf16) { check_objective(at::kBFloat16, 2e-2); }

// The trainer's bf16 mode: fp32 tensors under CPU autocast. The kernel runs in bf16 and hands
// fp32 gradients back, like the general path.
TEST(RowFused, FollowsCpuAutocast) {
  const Inputs in(at::kFloat);
  const auto request = request_for(in, eakld(), true);
  const d::RowFusedCoefficients c{0.1, 1.3, 0.7};
  auto run = [&](bool row_fused) {
    const at::Tensor h = in.hs.clone().requires_grad_(true), w = in.ws.clone().requires_grad_(true);
    const auto s = d::LogitsSource::from_hidden(h, w), t = d::LogitsSource::from_hidden(in.ht, in.wt);
    at::Tensor total;
    {
      const edgerazor::train::AutocastScope autocast(edgerazor::train::Precision::bf16, /*cuda=*/false);
      if (row_fused) {
        EXPECT_TRUE(d::row_fused_supported(s, t, request));
        total = d::row_fused_losses(s, t, request, [&](double) { return c; }).total;
      } else {
        const auto r = d::fused_logit_losses(s, t, request);
        total = r.ce * c.ce + r.forward[0] * c.forward + r.reverse[0] * c.reverse;
      }
    }  // the scope restores autocast and clears its cast cache
    total.backward();
    return std::vector<at::Tensor>{total.detach(), h.grad(), w.grad()};
  };
  const auto ref = run(false), got = run(true);
  EXPECT_EQ(got[1].scalar_type(), at::kFloat);
  EXPECT_EQ(got[2].scalar_type(), at::kFloat);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_LT(rel(got[i], ref[i]), 3e-2) << i;
}

// A teacher with a wider hidden state than the student (its own lm_head width).
TEST(RowFused, TeacherWiderThanStudent) {
  const Inputs in(at::kFloat);
  const at::Tensor ht = at::randn({in.B, in.T, 80}), wt = at::randn({in.V, 80}) * 0.3;
  const auto request = request_for(in, eakld(), true);
  const d::RowFusedCoefficients c{0.1, 1.3, 0.7};
  auto run = [&](bool row_fused) {
    const at::Tensor h = in.hs.clone().requires_grad_(true);
    const auto s = d::LogitsSource::from_hidden(h, in.ws), t = d::LogitsSource::from_hidden(ht, wt);
    at::Tensor total;
    if (row_fused) {
      total = d::row_fused_losses(s, t, request, [&](double) { return c; }).total;
    } else {
      const auto r = d::fused_logit_losses(s, t, request);
      total = r.ce * c.ce + r.forward[0] * c.forward + r.reverse[0] * c.reverse;
    }
    total.backward();
    return std::vector<at::Tensor>{total.detach(), h.grad()};
  };
  const auto ref = run(false), got = run(true);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_LT(rel(got[i], ref[i]), 2e-5) << i;
}

TEST(RowFused, SecondBackwardIsAClearError) {
  const Inputs in(at::kFloat);
  const auto request = request_for(in, eakld(), true);
  const at::Tensor h = in.hs.clone().requires_grad_(true);
  const auto r = d::row_fused_losses(d::LogitsSource::from_hidden(h, in.ws), d::LogitsSource::from_hidden(in.ht, in.wt),
                                     request, [](double) { return d::RowFusedCoefficients{1.0, 1.0, 1.0}; });
  r.total.backward({}, /*retain_graph=*/true);
  try {
    r.total.backward();
    ADD_FAILURE() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("second backward"), std::string::npos) << e.what();
  }
}

TEST(RowFused, NoGradientWorkUnderNoGrad) {
  const Inputs in(at::kFloat);
  const auto request = request_for(in, eakld(), true);
  const at::Tensor w = in.ws.clone().requires_grad_(true);
  at::NoGradGuard no_grad;
  const auto r = d::row_fused_losses(d::LogitsSource::from_hidden(in.hs, w), d::LogitsSource::from_hidden(in.ht, in.wt),
                                     request, [](double) { return d::RowFusedCoefficients{1.0, 1.0, 1.0}; });
  EXPECT_FALSE(r.total.requires_grad());
  EXPECT_GT(r.ce.item<double>(), 0.0);
}

TEST(RowFused, DeclinesWhatItDoesNotImplement) {
  const auto s = d::LogitsSource::from_hidden(at::randn({1, 4, 8}), at::randn({16, 8}));
  d::FusedLogitRequest request;
  d::FusedKLTerm term;
  term.temperature = 2.0;
  request.terms.push_back(term);
  EXPECT_FALSE(d::row_fused_supported(s, s, request));  // T != 1
  request.terms[0].temperature = 1.0;
  EXPECT_TRUE(d::row_fused_supported(s, s, request));
  request.chunk_size = 0;
  EXPECT_FALSE(d::row_fused_supported(s, s, request));  // the unchunked reference path
  request.chunk_size = 256;
  request.terms.push_back(term);
  EXPECT_FALSE(d::row_fused_supported(s, s, request));  // two KL terms
  request.terms.pop_back();
  request.terms[0].gamma_stat = d::FusedGammaStat::target_prob;
  EXPECT_FALSE(d::row_fused_supported(s, s, request));  // CAKLD
  request.terms[0].gamma_stat = d::FusedGammaStat::none;
  EXPECT_FALSE(d::row_fused_supported(d::LogitsSource::from_logits(at::randn({1, 4, 16})), s, request));
  const auto dbl = d::LogitsSource::from_hidden(at::randn({1, 4, 8}, at::kDouble), at::randn({16, 8}, at::kDouble));
  EXPECT_FALSE(d::row_fused_supported(dbl, dbl, request));  // fp64 stays on the reference path
}

}  // namespace
