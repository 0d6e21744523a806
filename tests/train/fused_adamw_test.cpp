// FusedAdamW against torch::optim::AdamW: same parameters after several steps (fp32 to float
// rounding, bf16 to one bf16 ulp on a few elements), two decay groups, parameters without a
// gradient skipped, and interchangeable state (save one, load into the other).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <type_traits>
#include <vector>

#include "edgerazor/train/fused_adamw.h"
#include "edgerazor/train/step.h"
#include <torch/nn/utils/clip_grad.h>

namespace {

std::vector<at::Tensor> make_params(at::ScalarType dtype) {
  at::manual_seed(7);
  // Values on the bf16 grid in every dtype, so fp32 and bf16 runs start from the same numbers.
  const auto make = [&](at::IntArrayRef shape) {
    return at::randn(shape).to(at::kBFloat16).to(dtype).requires_grad_(true);
  };
  return {make({64, 48}), make({1000}), make({3, 5})};
}

template <typename Optimizer>
std::vector<at::Tensor> train(at::ScalarType dtype, int steps, Optimizer** out = nullptr, bool allocate_first = false) {
  auto params = make_params(dtype);
  const auto options = [](double wd) {
    return torch::optim::AdamWOptions(3e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(wd);
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>{params[0], params[2]},
                      std::make_unique<torch::optim::AdamWOptions>(options(0.1)));
  groups.emplace_back(std::vector<at::Tensor>{params[1]}, std::make_unique<torch::optim::AdamWOptions>(options(0.0)));
  static thread_local std::unique_ptr<Optimizer> keep;
  keep = std::make_unique<Optimizer>(std::move(groups), options(0.1));
  if constexpr (std::is_same_v<Optimizer, edgerazor::train::FusedAdamW>)
    if (allocate_first) keep->allocate_state();
  at::manual_seed(11);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < params.size(); ++i) {
      if (i == 2 && s % 2 == 1) {
        params[i].mutable_grad() = at::Tensor();  // no gradient this step: skipped
        continue;
      }
      params[i].mutable_grad() = (at::randn(params[i].sizes()) * (0.1 + s)).to(at::kBFloat16).to(dtype);
    }
    keep->step();
  }
  if (out != nullptr) *out = keep.get();
  std::vector<at::Tensor> values;
  for (const auto& p : params) values.push_back(p.detach().clone());
  return values;
}

TEST(FusedAdamW, MatchesTorchAdamWFp32) {
  const auto ref = train<torch::optim::AdamW>(at::kFloat, 6);
  const auto got = train<edgerazor::train::FusedAdamW>(at::kFloat, 6);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(at::allclose(got[i], ref[i], 1e-6, 1e-6)) << i;
}

// bf16: the fused step rounds once per stored value, PyTorch after every op; both stay within a
// few bf16 ulps of the same update computed in fp32 from the same bf16 start.
TEST(FusedAdamW, Bf16StaysWithinRoundingOfTheFp32Update) {
  const auto exact = train<torch::optim::AdamW>(at::kFloat, 1);
  const auto plain = train<torch::optim::AdamW>(at::kBFloat16, 1);
  const auto fused = train<edgerazor::train::FusedAdamW>(at::kBFloat16, 1);
  for (size_t i = 0; i < exact.size(); ++i) {
    const auto ulp = exact[i].abs() * (1.0 / 128) + 1e-6;
    const auto fused_err = (fused[i].to(at::kFloat) - exact[i]).abs();
    const auto plain_err = (plain[i].to(at::kFloat) - exact[i]).abs();
    EXPECT_TRUE(fused_err.le(ulp * 2).all().item<bool>()) << i;
    EXPECT_LE(fused_err.mean().item<double>(), plain_err.mean().item<double>() * 1.01) << i;
  }
}

TEST(FusedAdamW, StateIsInterchangeableWithTorchAdamW) {
  edgerazor::train::FusedAdamW* fused = nullptr;
  train<edgerazor::train::FusedAdamW>(at::kFloat, 3, &fused);
  std::stringstream buffer;
  {
    torch::serialize::OutputArchive archive;
    fused->save(archive);
    archive.save_to(buffer);
  }
  torch::optim::AdamW* plain = nullptr;
  train<torch::optim::AdamW>(at::kFloat, 1, &plain);
  torch::serialize::InputArchive archive;
  archive.load_from(buffer);
  plain->load(archive);
  std::vector<int64_t> steps;
  double moment_sum = 0.0, fused_sum = 0.0;
  for (const auto& entry : plain->state()) {
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*entry.second);
    steps.push_back(st.step());
    moment_sum += st.exp_avg().abs().sum().item<double>();
  }
  for (const auto& entry : fused->state())
    fused_sum += static_cast<const torch::optim::AdamWParamState&>(*entry.second).exp_avg().abs().sum().item<double>();
  std::sort(steps.begin(), steps.end());
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 3, 3}));  // the third parameter skipped one step
  EXPECT_DOUBLE_EQ(moment_sum, fused_sum);
}

// State made before the first step (as the trainer does) is the state that step would make:
// step 0 and zero moments; the steps that follow are bit for bit the lazily started run's.
TEST(FusedAdamW, StateAllocatedUpFrontChangesNothing) {
  edgerazor::train::FusedAdamW* fused = nullptr;
  train<edgerazor::train::FusedAdamW>(at::kFloat, 0, &fused, /*allocate_first=*/true);
  ASSERT_EQ(fused->state().size(), 3u);
  for (const auto& entry : fused->state()) {
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*entry.second);
    EXPECT_EQ(st.step(), 0);
    EXPECT_EQ(st.exp_avg().abs().sum().item<double>(), 0.0);
    EXPECT_EQ(st.exp_avg_sq().abs().sum().item<double>(), 0.0);
  }
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    const auto lazy = train<edgerazor::train::FusedAdamW>(dtype, 4);
    const auto upfront = train<edgerazor::train::FusedAdamW>(dtype, 4, nullptr, /*allocate_first=*/true);
    for (size_t i = 0; i < lazy.size(); ++i) EXPECT_TRUE(at::equal(lazy[i], upfront[i])) << i << " " << dtype;
  }
}

// Gradient clipping to 1.0 before each step (the gradients' norm is 6-30 here, so it always clips),
// either as torch::nn::utils::clip_grad_norm_ (multiplies the gradients) or train::clip_gradients
// handing the coefficient to the optimizer; returns the parameters after `steps` and the norms.
enum class Clip { torch, folded };
std::vector<at::Tensor> train_clipped(at::ScalarType dtype, int steps, Clip clip, bool amsgrad, std::vector<double>* norms) {
  auto params = make_params(dtype);
  edgerazor::train::FusedAdamW opt(params, torch::optim::AdamWOptions(3e-2).betas({0.9, 0.95}).weight_decay(0.1).amsgrad(amsgrad));
  at::manual_seed(11);
  for (int s = 0; s < steps; ++s) {
    for (auto& p : params) p.mutable_grad() = (at::randn(p.sizes()) * (0.1 + s)).to(at::kBFloat16).to(dtype);
    norms->push_back(clip == Clip::torch ? torch::nn::utils::clip_grad_norm_(params, 1.0)
                                         : edgerazor::train::clip_gradients(params, 1.0, &opt));
    opt.step();
  }
  std::vector<at::Tensor> values;
  for (const auto& p : params) values.push_back(p.detach().clone());
  return values;
}

// fp32: the coefficient read in the fused loop is bit for bit grad.mul_(coef) before the step; the
// base class's step (amsgrad) gets the gradients multiplied, in fp32 and bf16 alike; bf16 in the
// fused loop skips the scaled gradient's rounding, so it stays within bf16 rounding of it. Same norms.
TEST(FusedAdamW, ClippingFoldedIntoTheStepEqualsClippingTheGradients) {
  for (const bool amsgrad : {false, true})
    for (const auto dtype : {at::kFloat, at::kBFloat16}) {
      std::vector<double> torch_norms, folded_norms;
      const auto ref = train_clipped(dtype, 4, Clip::torch, amsgrad, &torch_norms);
      const auto got = train_clipped(dtype, 4, Clip::folded, amsgrad, &folded_norms);
      EXPECT_EQ(torch_norms, folded_norms) << dtype;
      EXPECT_GT(torch_norms.front(), 1.0);  // it clips
      for (size_t i = 0; i < ref.size(); ++i) {
        if (dtype == at::kFloat || amsgrad) {
          EXPECT_TRUE(at::equal(got[i], ref[i])) << i << " " << dtype << " amsgrad " << amsgrad;
        } else {
          const auto err = (got[i].to(at::kFloat) - ref[i].to(at::kFloat)).abs();
          // two bf16 ulps of the value, plus 1 % of lr per step for the unrounded gradient's effect on m and v
          EXPECT_TRUE(err.le(ref[i].to(at::kFloat).abs() * (1.0 / 64) + 4 * 3e-4).all().item<bool>()) << i;
          EXPECT_LT(err.mean().item<double>(), 1e-3) << i;
        }
      }
    }
}

// max_norm 0: the norm only, in fp64, the gradients untouched. fp32 CPU gradients (one of them
// several 64K-element chunks long) are summed without an fp64 copy, a bf16 one and a strided one
// through ATen; all agree with ATen's fp64 sum of squares to round-off.
TEST(ClipGradients, NormOnlyIsTheFp64NormAndLeavesTheGradients) {
  at::manual_seed(5);
  std::vector<at::Tensor> params = {at::zeros({300, 1000}), at::zeros({77}), at::zeros({64, 48}, at::kBFloat16),
                                    at::zeros({40, 30})};
  double expected_sq = 0;
  std::vector<at::Tensor> before;
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].requires_grad_(true);
    at::Tensor g = at::randn(params[i].sizes()).to(params[i].scalar_type());
    if (i == 3) g = at::randn({30, 40}).t();  // not contiguous
    params[i].mutable_grad() = g;
    before.push_back(g.clone());
    expected_sq += g.to(at::kDouble).pow(2).sum().item<double>();
  }
  const double norm = edgerazor::train::clip_gradients(params, 0.0, nullptr);
  EXPECT_NEAR(norm, std::sqrt(expected_sq), 1e-12 * std::sqrt(expected_sq));
  EXPECT_GT(norm, 1.0);  // a threshold of 1 would have clipped
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(at::equal(params[i].grad(), before[i])) << i;
}

}  // namespace
