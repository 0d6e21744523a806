// Quantizer functions against spec quantization.md §11 (bit for bit where the spec gives exact
// values), plus properties on random tensors.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "edgerazor/core/error.h"
#include "edgerazor/quant/functions.h"

namespace edgerazor::quant {
namespace {

constexpr const char* kTernary = "weight_quant_uniform_symmetric_clip_per_block_int1_58";
constexpr const char* kInt4 = "weight_quant_uniform_symmetric_absmax_per_block_int4";
constexpr const char* kAsym = "weight_quant_uniform_asymmetric_max_per_block_int4";
constexpr const char* kA8 = "state_quant_uniform_symmetric_absmax_per_block_int8";
constexpr const char* kRowSparse = "weight_quant_uniform_symmetric_clip_per_block_mp_int1_58_int4_static_row_wise_sparse";

at::Tensor vec(std::vector<float> v, at::ScalarType dtype = at::kFloat) {
  return at::tensor(v, at::TensorOptions().dtype(at::kFloat)).to(dtype);
}

const std::vector<float> kW = {0.10f, -0.30f, 0.05f, 0.00f, 0.40f, -0.20f, 0.01f, -0.02f};

void expect_close(const at::Tensor& actual, const std::vector<float>& expected, double tol) {
  const at::Tensor a = actual.to(at::kFloat).reshape({-1});
  ASSERT_EQ(a.numel(), static_cast<int64_t>(expected.size()));
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a[i].item<float>(), expected[i], tol) << "element " << i;
}

// Scalar re-implementation in float, in the reference's op order, for bit-exact fp32 checks.
std::vector<float> ternary_ref(const std::vector<float>& w, int block, float factor, float eps) {
  std::vector<float> out(w.size());
  for (size_t b = 0; b < w.size(); b += block) {
    float sum = 0;
    for (int i = 0; i < block; ++i) sum += std::fabs(w[b + i]);
    const float s = std::max(sum / static_cast<float>(block) * factor, eps);
    for (int i = 0; i < block; ++i) out[b + i] = std::min(1.f, std::max(-1.f, std::nearbyint(w[b + i] / s))) * s;
  }
  return out;
}

std::vector<float> absmax_ref(const std::vector<float>& w, int block, int q, float eps) {
  std::vector<float> out(w.size());
  for (size_t b = 0; b < w.size(); b += block) {
    float m = 0;
    for (int i = 0; i < block; ++i) m = std::max(m, std::fabs(w[b + i]));
    const float s = std::max(m, eps) / static_cast<float>(q);
    for (int i = 0; i < block; ++i)
      out[b + i] = std::min<float>(q, std::max<float>(-q, std::nearbyint(w[b + i] / s))) * s;
  }
  return out;
}

TEST(SpecVectors, TernaryPerBlockFp32) {
  const auto spec = spec_for(kTernary, 4, 2.0, -1, 1e-5);
  const at::Tensor out = fake_quantize(vec(kW), spec);
  expect_close(out, {0, -0.225f, 0, 0, 0.315f, -0.315f, 0, 0}, 1e-6);
  EXPECT_TRUE(at::equal(out, vec(ternary_ref(kW, 4, 2.0f, 1e-5f))));
  const QuantizedTensor q = quantize(vec(kW), spec);
  expect_close(q.scales, {0.225f, 0.315f}, 1e-6);
  EXPECT_TRUE(at::equal(q.codes.reshape({-1}), at::tensor(std::vector<int8_t>{0, -1, 0, 0, 1, -1, 0, 0})));
}

TEST(SpecVectors, TernaryPerBlockBf16) {
  const at::Tensor out = fake_quantize(vec(kW, at::kBFloat16), spec_for(kTernary, 4, 2.0, -1, 1e-5));
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(out, vec({0, -0.2255859375f, 0, 0, 0.314453125f, -0.314453125f, 0, 0}, at::kBFloat16)));
}

TEST(SpecVectors, Int4AbsmaxFp32AndBf16) {
  const auto spec = spec_for(kInt4, 4, -1, -1, 1e-5);
  const at::Tensor out = fake_quantize(vec(kW), spec);
  expect_close(out, {0.085714f, -0.3f, 0.042857f, 0, 0.4f, -0.228571f, 0, 0}, 1e-6);
  EXPECT_TRUE(at::equal(out, vec(absmax_ref(kW, 4, 7, 1e-5f))));
  const at::Tensor bf = fake_quantize(vec(kW, at::kBFloat16), spec);
  EXPECT_TRUE(at::equal(
      bf, vec({0.0859375f, -0.30078125f, 0.04296875f, 0, 0.400390625f, -0.228515625f, 0, 0}, at::kBFloat16)));
}

TEST(SpecVectors, AsymmetricInt4) {
  const at::Tensor out = fake_quantize(vec(kW), spec_for(kAsym, 4, -1, -1, 1e-5));
  expect_close(out, {0.1f, -0.114286f, 0.057143f, 0, 0.4f, -0.228571f, 0, 0}, 1e-6);
  // -0.30 saturates at -8 * s (spec §1.5).
  const QuantizedTensor q = quantize(vec(kW), spec_for(kAsym, 4, -1, -1, 1e-5));
  EXPECT_EQ(q.codes.reshape({-1})[1].item<int8_t>(), -8);
}

TEST(SpecVectors, ActivationInt8PerBlock) {
  const std::vector<float> x = {1, -2, 0.5f, 3, 0.25f, -0.125f, 0, 1.5f};
  const at::Tensor out = fake_quantize(vec(x), spec_for(kA8, 4, -1, -1, 1e-5));
  expect_close(out, {0.992126f, -2.007874f, 0.496063f, 3.0f, 0.248031f, -0.129921f, 0, 1.5f}, 1e-6);
  EXPECT_TRUE(at::equal(out, vec(absmax_ref(x, 4, 127, 1e-5f))));
}

at::Tensor spec_matrix_8x8() {
  at::Tensor w = at::empty({8, 8});
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) w[r][c] = (8.f * r + c + 1) / 64.f * (c % 2 == 0 ? 1.f : -1.f);
  return w;
}

TEST(SpecVectors, MixedRowWiseSparse) {
  const auto spec = spec_for(kRowSparse, 4, 2.0, 0.5, 1e-5);
  const at::Tensor out = fake_quantize(spec_matrix_8x8(), spec);
  expect_close(out[0], {0.017857f, -0.026786f, 0.044643f, -0.0625f, 0.071429f, -0.089286f, 0.107143f, -0.125f}, 1e-6);
  expect_close(out[1], {0, 0, 0.328125f, -0.328125f, 0, 0, 0.453125f, -0.453125f}, 1e-6);
  // Even rows INT4, odd rows ternary (p = 0.5 -> r = 2).
  const QuantizedTensor q = quantize(spec_matrix_8x8(), spec);
  const at::Tensor rows = q.int4_groups.reshape({8, 2}).all(1);
  for (int r = 0; r < 8; ++r) EXPECT_EQ(rows[r].item<bool>(), r % 2 == 0) << "row " << r;
  EXPECT_TRUE(at::equal(q.dequantize(), out));
}

std::string mask_string(const at::Tensor& mask, int rows, int cols) {
  std::string s;
  const at::Tensor m = mask.reshape({rows, cols});
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) s += m[r][c].item<bool>() ? '1' : '0';
    s += r + 1 < rows ? "|" : "";
  }
  return s;
}

TEST(SpecVectors, MixedStrategyMasks) {
  at::manual_seed(0);
  const at::Tensor w = at::randn({8, 512});
  const at::Tensor blocks = w.reshape({-1, 64});
  const MaskContext ctx{8, 8, 64, 0.25, blocks};
  EXPECT_EQ(mask_string(mixed_block_mask("static", ctx), 8, 8),
            "11111111|11111111|00000000|00000000|00000000|00000000|00000000|00000000");
  EXPECT_EQ(mask_string(mixed_block_mask("static_column_wise", ctx), 8, 8),
            "11000000|11000000|11000000|11000000|11000000|11000000|11000000|11000000");
  EXPECT_EQ(mask_string(mixed_block_mask("static_row_wise_sparse", ctx), 8, 8),
            "11111111|00000000|00000000|00000000|11111111|00000000|00000000|00000000");
  const at::Tensor sparse = mixed_block_mask("static_sparse", ctx);
  EXPECT_EQ(sparse.sum().item<int64_t>(), 25);
  EXPECT_TRUE(sparse.slice(0, 0, 25).all().item<bool>());
  const at::Tensor dynamic = mixed_block_mask("dynamic", ctx);
  EXPECT_EQ(dynamic.sum().item<int64_t>(), 16);
  // The chosen blocks are exactly the 16 highest-variance ones.
  const at::Tensor var = blocks.var(-1, true);
  EXPECT_GE(var.masked_select(dynamic).min().item<float>(), var.masked_select(dynamic.logical_not()).max().item<float>());
}

TEST(SpecVectors, PaperRowLayouts) {
  // 1.88-bit: 1 row in 8 is INT4; 2.79-bit: every other row (spec §2.3).
  at::manual_seed(1);
  const at::Tensor w = at::randn({24, 512});
  const QuantizedTensor q188 = quantize(w, spec_for(kRowSparse, 256, 2.0, 0.125, 1e-5));
  const at::Tensor rows188 = q188.int4_groups.reshape({24, 2}).all(1);
  for (int r = 0; r < 24; ++r) EXPECT_EQ(rows188[r].item<bool>(), r % 8 == 0);
  const QuantizedTensor q279 = quantize(w, spec_for(kRowSparse, 256, 2.0, 0.5, 1e-5));
  EXPECT_EQ(q279.int4_groups.sum().item<int64_t>(), 24);  // 12 rows x 2 blocks
}

TEST(PerBlockReshape, ThreeCases) {
  const at::Tensor a = at::arange(24, at::kFloat).reshape({2, 12});
  EXPECT_EQ(to_blocks(a, 4).sizes(), (std::vector<int64_t>{2, 3, 4}));  // case 1
  const at::Tensor b = at::arange(24, at::kFloat).reshape({4, 6});
  EXPECT_EQ(to_blocks(b, 4).sizes(), (std::vector<int64_t>{6, 4}));     // case 2: blocks cross rows
  const at::Tensor c = at::arange(10, at::kFloat).reshape({2, 5});
  const at::Tensor padded = to_blocks(c, 4);                             // case 3: zero padding
  EXPECT_EQ(padded.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(padded[2][2].item<float>(), 0.f);
  EXPECT_TRUE(at::equal(from_blocks(padded, c.sizes()), c));
  // Padding lowers the last block's mean |w| (spec §1.1): block [8, 9, 0, 0] has scale 2*17/4.
  const QuantizedTensor q = quantize(c, spec_for(kTernary, 4, 2.0, -1, 1e-5));
  EXPECT_FLOAT_EQ(q.scales.reshape({-1})[2].item<float>(), 8.5f);
  EXPECT_THROW(to_blocks(c, 4, /*allow_padding=*/false), c10::Error);
}

TEST(PerBlockReshape, MixedRejectsPartialBlocks) {
  EXPECT_ANY_THROW(fake_quantize(at::randn({3, 5}), spec_for(kRowSparse, 4, 2.0, 0.5, 1e-5)));
}

TEST(Numerics, RoundHalfToEven) {
  // |w| == s/2 rounds to 0 (spec §1.2): block [1, 1, -1, -1] * 0.5 with a 0.25 element.
  const at::Tensor w = vec({0.5f, 2.5f, 1.5f, 0.0f});  // INT8 over max 2.5: s = 2.5/127
  const auto spec = spec_for(kInt4, 4, -1, -1, 1e-5);
  // With max 2.5 and Q=7: w/s = [1.4, 7, 4.2, 0] -> [1, 7, 4, 0].
  const QuantizedTensor q = quantize(w, spec);
  EXPECT_TRUE(at::equal(q.codes.reshape({-1}), at::tensor(std::vector<int8_t>{1, 7, 4, 0})));
  const at::Tensor halves = vec({0.5f, 1.5f, 2.5f, -0.5f});
  EXPECT_TRUE(at::equal(halves.round(), vec({0.f, 2.f, 2.f, -0.f})));
}

TEST(Numerics, EpsilonFloorsAllZeroBlocks) {
  const at::Tensor zeros = at::zeros({2, 8});
  const QuantizedTensor t = quantize(zeros, spec_for(kTernary, 4, 2.0, -1, 1e-5));
  EXPECT_TRUE(at::allclose(t.scales, at::full_like(t.scales, 1e-5)));
  const QuantizedTensor i = quantize(zeros, spec_for(kInt4, 4, -1, -1, 1e-5));
  EXPECT_TRUE(at::allclose(i.scales, at::full_like(i.scales, 1e-5 / 7)));  // clamp before dividing
  EXPECT_TRUE(at::equal(t.dequantize(), zeros));
}

class RandomProperties : public ::testing::TestWithParam<std::tuple<std::string, at::ScalarType>> {};

TEST_P(RandomProperties, CodesScalesAndRoundTrip) {
  const auto& [function, dtype] = GetParam();
  at::manual_seed(42);
  const at::Tensor w = (at::randn({16, 512}) * 0.02).to(dtype);
  const auto spec = spec_for(function, 128, -1, 0.25, 1e-5);
  const QuantizedTensor q = quantize(w, spec);
  const at::Tensor fake = fake_quantize(w, spec);
  EXPECT_EQ(fake.scalar_type(), dtype);               // runs in the input dtype
  EXPECT_EQ(fake.sizes(), w.sizes());
  EXPECT_TRUE(at::equal(q.dequantize(), fake));       // integer form is exact
  const int qmax = spec.qmax;
  const bool mixed = spec.rule == config::QuantRule::kMixedTernaryInt4;
  const bool asym = spec.rule == config::QuantRule::kAsymmetricMax;
  EXPECT_LE(q.codes.max().item<int>(), mixed ? 7 : qmax);
  EXPECT_GE(q.codes.min().item<int>(), asym ? -8 : -(mixed ? 7 : qmax));
  // Scale formula on the first block.
  const at::Tensor block = w.reshape({-1, 128})[0];
  if (spec.rule == config::QuantRule::kTernaryAbsmean) {
    EXPECT_TRUE(at::equal(q.scales.reshape({-1})[0], block.abs().mean().mul(2.0).clamp_min(1e-5)));
  } else if (spec.rule == config::QuantRule::kSymmetricAbsmax) {
    EXPECT_TRUE(at::equal(q.scales.reshape({-1})[0], block.abs().max().clamp_min(1e-5).div(qmax)));
    // Absmax quantizers are idempotent on their codes (in fp32; bf16 rounds Q*s away from max).
    if (dtype == at::kFloat) EXPECT_TRUE(at::equal(quantize(fake, spec).codes, q.codes));
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllWeightRules, RandomProperties,
    ::testing::Combine(::testing::Values(kTernary, kInt4, kAsym, kRowSparse,
                                         "weight_quant_uniform_symmetric_absmax_per_block_int8",
                                         "weight_quant_uniform_symmetric_absmax_per_block_int5",
                                         "weight_quant_uniform_symmetric_absmax_per_block_int1_58",
                                         "weight_quant_uniform_symmetric_clip_per_block_mp_int1_58_int4_dynamic",
                                         "weight_quant_uniform_symmetric_clip_per_block_mp_int1_58_int4_static"),
                       ::testing::Values(at::kFloat, at::kBFloat16)));
// fp16 is not in the list: LibTorch 1.13's CPU kernels lack clamp_min for Half (CUDA has it).

TEST(Granularity, PerTensorAndPerChannel) {
  const at::Tensor w = at::tensor({1.f, -2.f, 3.f, -4.f}).reshape({2, 2});
  const at::Tensor t = fake_quantize(w, spec_for("weight_quant_uniform_symmetric_absmax_per_tensor_int4", -1, -1, -1, 1e-5));
  const float s = 4.f / 7;
  EXPECT_TRUE(at::allclose(t, at::tensor({std::nearbyint(1 / s) * s, std::nearbyint(-2 / s) * s,
                                          std::nearbyint(3 / s) * s, -4.f}).reshape({2, 2})));
  const at::Tensor c = fake_quantize(w, spec_for("weight_quant_uniform_symmetric_clip_per_channel_int1_58", -1, 2.0, -1, 1e-5));
  // Row 0: s = 2*1.5 = 3 -> [0, -3]; row 1: s = 7 -> [0, -7]... |3|/7 rounds to 0, |-4|/7 to -1.
  EXPECT_TRUE(at::equal(c, at::tensor({0.f, -3.f, 0.f, -7.f}).reshape({2, 2})));
}

TEST(Strategies, CustomRuleIsAFewLines) {
  register_mixed_strategy("last_row", [](const MaskContext& c) {
    at::Tensor m = at::zeros({c.num_blocks}, at::kBool);
    m.slice(0, c.num_blocks - c.blocks_per_row).fill_(true);
    return m;
  });
  ASSERT_NE(config::find_function(std::string(config::kMixedFunctionPrefix) + "last_row"), nullptr);
  const QuantizedTensor q = quantize(at::randn({4, 8}), spec_for(std::string(config::kMixedFunctionPrefix) + "last_row", 4, 2.0, 0.5, 1e-5));
  EXPECT_EQ(mask_string(q.int4_groups, 4, 2), "00|00|00|11");
}

// Large tensors are fake-quantized in chunks of whole groups (fake_quantize); the result must be
// the one-pass ATen composition's bit for bit, in fp32 and bf16, for row-following blocks, blocks
// across rows (case 2), padded blocks (case 3) and per-token groups.
struct QuantCase {
  std::vector<int64_t> shape;
  const char* function;
  int64_t block;
};

at::Tensor one_pass(const at::Tensor& w, const std::string& function, int64_t block) {
  const QuantSpec spec = spec_for(function, block, -1, -1, 1e-5);
  const bool per_token = spec.granularity == config::Granularity::kToken;
  const at::Tensor groups = per_token ? w : to_blocks(w, spec.block_size, /*allow_padding=*/true);
  at::Tensor codes, scales;
  if (spec.rule == config::QuantRule::kTernaryAbsmean) {
    scales = absmean_scale(groups, spec.scale_factor, spec.eps);
    codes = groups.div(scales).round().clamp(-1, 1);
  } else {
    scales = absmax_scale(groups, spec.qmax, spec.eps);
    codes = groups.div(scales).round().clamp(-spec.qmax, spec.qmax);
  }
  const at::Tensor values = codes.mul(scales);
  return per_token ? values.reshape(w.sizes()) : from_blocks(values, w.sizes());
}

TEST(Chunked, LargeTensorsMatchOnePassBitForBit) {
  at::manual_seed(7);
  const std::vector<QuantCase> cases = {
      {{4099, 1024}, kTernary, 256},                                              // blocks in rows
      {{2053, 1000}, kTernary, 250},                                              // ragged last chunk
      {{3000, 700}, kTernary, 256},                                               // case 2: across rows
      {{3001, 701}, kTernary, 256},                                               // case 3: padded
      {{2500, 1024}, kA8, 256},                                                   // A8 absmax
      {{2, 1300, 1024}, "state_quant_uniform_symmetric_absmax_per_token_int8", -1},  // per token
  };
  for (const auto& c : cases) {
    for (const auto dtype : {at::kFloat, at::kBFloat16}) {
      const at::Tensor w = (at::randn(c.shape) * 0.05).to(dtype);
      const at::Tensor chunked = fake_quantize(w, spec_for(c.function, c.block, -1, -1, 1e-5));
      const at::Tensor reference = one_pass(w, c.function, c.block);
      ASSERT_EQ(chunked.sizes(), w.sizes());
      EXPECT_TRUE(at::equal(chunked, reference)) << c.function << " " << w.sizes() << " " << dtype;
    }
  }
}


// The division, rounding, clamping and scaling run as one fused pass (fake_quant_kernel.h) for the
// ternary and symmetric absmax rules: bit for bit the ATen composition's, signed zeros and
// half-way quotients included, for small (one pass) and large (chunked) tensors.
at::Tensor bits(const at::Tensor& t) { return t.contiguous().view(t.scalar_type() == at::kBFloat16 ? at::kShort : at::kInt); }

TEST(Fused, MatchesTheAtenCompositionBitForBit) {
  at::manual_seed(11);
  const std::vector<QuantCase> cases = {
      {{64, 512}, kTernary, 256},     {{37, 100}, kTernary, 64},  {{3, 7}, kTernary, 4},  // padded
      {{64, 256}, kInt4, 64},         {{512, 1024}, kA8, 256},    {{2100, 1024}, kA8, 256},
      {{2, 9, 64}, "state_quant_uniform_symmetric_absmax_per_token_int8", -1},
      {{2100, 1024}, kTernary, 256},  // chunked
  };
  for (const auto& c : cases) {
    for (const auto dtype : {at::kFloat, at::kBFloat16}) {
      // Small magnitudes next to large ones: many codes round to (signed) zero; bf16 quotients are
      // coarse, so many land exactly half-way between two codes.
      at::Tensor w = at::randn(c.shape) * 0.05;
      w = at::where(at::rand(c.shape) < 0.2, w * 1e-3, w).to(dtype);
      const at::Tensor fused = fake_quantize(w, spec_for(c.function, c.block, -1, -1, 1e-5));
      const at::Tensor reference = one_pass(w, c.function, c.block);
      ASSERT_EQ(fused.sizes(), w.sizes());
      EXPECT_TRUE(at::equal(bits(fused), bits(reference))) << c.function << " " << w.sizes() << " " << dtype;
    }
  }
  // Exact half-way quotients: x / s = k + 0.5 round to the even code.
  const at::Tensor halves = vec({2.5f, -0.5f, 0.5f, 1.5f, -2.5f, 127.f, -0.25f, 3.5f});
  const at::Tensor fused = fake_quantize(halves, spec_for(kA8, 8, -1, -1, 1e-5));
  EXPECT_TRUE(at::equal(bits(fused), bits(one_pass(halves, kA8, 8))));
}

}  // namespace
}  // namespace edgerazor::quant
