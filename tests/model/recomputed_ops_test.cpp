// attention_core and swiglu with their intermediates recomputed in backward give bit-identical
// outputs and gradients to plain autograd over the same ops (fp32 and bf16, attention with and
// without a mask).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "edgerazor/model/attention_core.h"
#include "edgerazor/model/swiglu.h"

namespace {

void check(at::ScalarType dtype, bool with_mask) {
  at::manual_seed(5);
  const int64_t B = 2, H = 3, T = 7, D = 16;
  const auto opts = at::TensorOptions().dtype(dtype);
  const at::Tensor q0 = at::randn({B, H, T, D}, opts), k0 = at::randn({B, H, T, D}, opts),
                   v0 = at::randn({B, H, T, D}, opts), dout = at::randn({B, H, T, D}, opts);
  at::Tensor mask;
  if (with_mask) {
    const auto i = at::arange(T).unsqueeze(1), j = at::arange(T).unsqueeze(0);
    mask = at::zeros({T, T}, opts).masked_fill(j > i, -1e9).view({1, 1, T, T});
  }
  auto run = [&](bool recompute) {
    const at::Tensor q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true),
                     v = v0.clone().requires_grad_(true);
    const at::Tensor out = edgerazor::model::attention_core(q, k, v, mask, 1.0 / std::sqrt(double(D)), recompute);
    out.backward(dout);
    return std::vector<at::Tensor>{out.detach(), q.grad(), k.grad(), v.grad()};
  };
  const auto plain = run(false), recomputed = run(true);
  const char* names[] = {"out", "grad_q", "grad_k", "grad_v"};
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(at::equal(plain[i], recomputed[i])) << names[i];
}

TEST(AttentionCore, RecomputedEqualsPlainFp32Causal) { check(at::kFloat, true); }
TEST(AttentionCore, RecomputedEqualsPlainBf16Causal) { check(at::kBFloat16, true); }
TEST(AttentionCore, RecomputedEqualsPlainBf16NoMask) { check(at::kBFloat16, false); }

void check_swiglu(at::ScalarType dtype) {
  at::manual_seed(6);
  const auto opts = at::TensorOptions().dtype(dtype);
  const at::Tensor g0 = at::randn({2, 5, 24}, opts), u0 = at::randn({2, 5, 24}, opts), dout = at::randn({2, 5, 24}, opts);
  auto run = [&](bool recompute) {
    const at::Tensor g = g0.clone().requires_grad_(true), u = u0.clone().requires_grad_(true);
    const at::Tensor out = edgerazor::model::swiglu(g, u, recompute);
    out.backward(dout);
    return std::vector<at::Tensor>{out.detach(), g.grad(), u.grad()};
  };
  const auto plain = run(false), recomputed = run(true);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(at::equal(plain[i], recomputed[i])) << i;
}

TEST(SwiGlu, RecomputedEqualsPlainFp32) { check_swiglu(at::kFloat); }
TEST(SwiGlu, RecomputedEqualsPlainBf16) { check_swiglu(at::kBFloat16); }

}  // namespace
