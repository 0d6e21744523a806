// attention_core and swiglu with their intermediates recomputed in backward give bit-identical
// outputs and gradients to plain autograd over the same ops (fp32 and bf16, attention with and
// without a mask).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "edgerazor/model/attention_core.h"
#include "edgerazor/model/rms_norm.h"
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

// blocked_causal_attention against the full-square causal attention_core (same maths, rows of
// the softmax cut to the keys a query sees): fp32 to rounding, bf16 within bf16 rounding of the
// result; block sizes that divide T and one that leaves a short last block; and against
// libtorch's fused kernel.
void check_blocked(at::ScalarType dtype, int64_t block, double tol) {
  at::manual_seed(9);
  const int64_t B = 2, H = 3, T = 37, D = 16;
  const auto opts = at::TensorOptions().dtype(dtype);
  const at::Tensor q0 = at::randn({B, H, T, D}, opts), k0 = at::randn({B, H, T, D}, opts),
                   v0 = at::randn({B, H, T, D}, opts), dout = at::randn({B, H, T, D}, opts);
  const auto i = at::arange(T).unsqueeze(1), j = at::arange(T).unsqueeze(0);
  const at::Tensor mask = at::zeros({T, T}, opts).masked_fill(j > i, -1e9).view({1, 1, T, T});
  const double scale = 1.0 / std::sqrt(double(D));
  auto run = [&](bool blocked) {
    const at::Tensor q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true),
                     v = v0.clone().requires_grad_(true);
    const at::Tensor out = blocked ? edgerazor::model::blocked_causal_attention(q, k, v, scale, block)
                                   : edgerazor::model::attention_core(q, k, v, mask, scale, false);
    out.backward(dout);
    return std::vector<at::Tensor>{out.detach(), q.grad(), k.grad(), v.grad()};
  };
  const auto full = run(false), blocked = run(true);
  const char* names[] = {"out", "grad_q", "grad_k", "grad_v"};
  for (size_t n = 0; n < full.size(); ++n) {
    ASSERT_EQ(blocked[n].scalar_type(), dtype) << names[n];
    const double err = (blocked[n].to(at::kFloat) - full[n].to(at::kFloat)).abs().max().item<double>();
    const double size = full[n].to(at::kFloat).abs().max().item<double>();
    EXPECT_LE(err, tol * size) << names[n] << " block " << block;
  }
  // The first query sees only the first key: its output is v[0] exactly.
  EXPECT_TRUE(at::equal(blocked[0].select(2, 0), v0.select(2, 0)));
}

TEST(BlockedCausalAttention, MatchesFullSquareFp32) {
  for (int64_t block : {4, 8, 10, 37, 64}) check_blocked(at::kFloat, block, 1e-5);
}
// fp64 takes the ATen composition (the fused row kernels take CPU fp32 and bf16); both softmaxes
// run in fp32.
TEST(BlockedCausalAttention, MatchesFullSquareFp64) {
  for (int64_t block : {8, 37}) check_blocked(at::kDouble, block, 1e-5);
}
TEST(BlockedCausalAttention, MatchesFullSquareBf16) {
  for (int64_t block : {8, 10}) check_blocked(at::kBFloat16, block, 2e-2);
}
TEST(BlockedCausalAttention, MatchesFusedKernelFp32) {
  at::manual_seed(10);
  const at::Tensor q = at::randn({1, 4, 50, 8}), k = at::randn({1, 4, 50, 8}), v = at::randn({1, 4, 50, 8});
  const at::Tensor fused = at::scaled_dot_product_attention(q, k, v, c10::nullopt, 0.0, /*is_causal=*/true);
  const at::Tensor blocked = edgerazor::model::blocked_causal_attention(q, k, v, 1.0 / std::sqrt(8.0), 16);
  EXPECT_LE((fused - blocked).abs().max().item<double>(), 1e-5);
}

// rms_norm's autograd function against the plain ops under autograd: the same output bit for bit,
// gradients of x and weight to fp32 rounding (bf16: to bf16 rounding); rows of a width with a
// vector tail (37) and of a head's (128).
void check_rms_norm(at::ScalarType dtype, double tol) {
  for (const auto& shape : {std::vector<int64_t>{2, 5, 37}, std::vector<int64_t>{3, 4, 2, 128}}) {
    at::manual_seed(12);
    const auto opts = at::TensorOptions().dtype(dtype);
    const int64_t D = shape.back();
    const at::Tensor x0 = at::randn(shape, opts) * 3, w0 = (at::rand({D}) + 0.5).to(dtype), dy = at::randn(shape, opts);
    auto run = [&](bool fused) {
      const at::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
      at::Tensor y;
      if (fused) {
        y = edgerazor::model::rms_norm(x, w, 1e-6);
      } else {
        const at::Tensor x32 = x.to(at::kFloat);
        y = w * (x32 * at::rsqrt(x32.pow(2).mean(-1, true) + 1e-6)).to(dtype);
      }
      y.backward(dy);
      return std::vector<at::Tensor>{y.detach(), x.grad(), w.grad()};
    };
    const auto plain = run(false), fused = run(true);
    EXPECT_TRUE(at::equal(plain[0], fused[0])) << dtype;
    for (size_t n = 1; n < plain.size(); ++n) {
      ASSERT_EQ(fused[n].scalar_type(), dtype);
      const double err = (fused[n].to(at::kFloat) - plain[n].to(at::kFloat)).abs().max().item<double>();
      EXPECT_LE(err, tol * plain[n].to(at::kFloat).abs().max().item<double>()) << (n == 1 ? "grad_x " : "grad_w ") << dtype;
    }
  }
}
TEST(RmsNorm, FusedBackwardMatchesAutogradFp32) { check_rms_norm(at::kFloat, 1e-5); }
TEST(RmsNorm, FusedBackwardMatchesAutogradBf16) { check_rms_norm(at::kBFloat16, 2e-2); }

}  // namespace
