// YAML quantization configs (ours and the reference's qat_configuration), presets, and the
// compression report computed from shapes alone.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fixtures/fixtures.h"
#include "edgerazor/config/quant_config.h"
#include "edgerazor/config/quant_plan.h"
#include "edgerazor/config/quant_presets.h"
#include "edgerazor/core/error.h"

namespace edgerazor::config {
namespace {

using ::testing::HasSubstr;

std::string error_of(const std::string& yaml) {
  try {
    parse_quant_config_yaml(yaml, "bad.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

// The paper's Qwen3-0.6B 1.88-bit train.yaml (spec §5.6), with its paper-era type name.
const std::string kPaperYaml = read_fixture("paper_qwen3-0.6b_w1.88_train.yaml");

TEST(QuantConfigYaml, ReadsThePapersReferenceConfig) {
  const QuantConfig c = parse_quant_config_yaml(kPaperYaml, "train.yaml");
  EXPECT_EQ(c.select.target_types, (std::vector<std::string>{"linear", "embedding", "qwen3attention"}));
  EXPECT_EQ(c.function.w_block_size, 256);
  EXPECT_DOUBLE_EQ(c.function.w_mixed_precision_prop, 0.125);
  EXPECT_EQ(c.function.kv_block_size, 128);
  ASSERT_EQ(c.overrides.size(), 2u);
  EXPECT_EQ(*c.overrides[1].name, "lm_head");
  // Same settings as the built-in paper preset.
  const QuantConfig p = preset("paper-qwen3-0.6b-w1.88");
  QuantConfig unnamed_p = p;
  unnamed_p.preset.clear();
  EXPECT_EQ(to_yaml(c).substr(0, 40), to_yaml(unnamed_p).substr(0, 40));
  EXPECT_EQ(c.function.weight_function, p.function.weight_function);
  EXPECT_EQ(c.function.kv_cache_function, p.function.kv_cache_function);
}

TEST(QuantConfigYaml, OurSectionWithPresetAndOverrides) {
  const QuantConfig c = parse_quant_config_yaml(R"(quantization:
  preset: w1.58a8kv8_qwen3
  function:
    a_block_size: 128
  select:
    exclude_names: [lm_head]
)", "run.yaml");
  EXPECT_EQ(c.preset, "w1_58a8kv8_qwen3");
  EXPECT_EQ(c.function.a_block_size, 128);
  EXPECT_EQ(c.function.w_block_size, 256);
  EXPECT_EQ(c.select.exclude_names, (std::vector<std::string>{"lm_head"}));
  // Round trip through to_yaml.
  // to_yaml is fully expanded (the preset only in a comment): reading it back gives the same
  // config, and the preset's overrides are not applied twice.
  const std::string text = to_yaml(c);
  EXPECT_THAT(text, HasSubstr("# expanded from preset w1_58a8kv8_qwen3"));
  const QuantConfig again = parse_quant_config_yaml(text, "again.yaml");
  QuantConfig unnamed = c;
  unnamed.preset.clear();
  EXPECT_EQ(to_yaml(again), to_yaml(unnamed));
  const QuantConfig emb = parse_quant_config_yaml("preset: w1.58a8kv8_embint4\nstrict_blocks: false\n", "e.yaml");
  const QuantConfig emb_again = parse_quant_config_yaml(to_yaml(emb), "e2.yaml");
  EXPECT_EQ(emb_again.overrides.size(), 2u);
  EXPECT_FALSE(emb_again.strict_blocks);
}

TEST(QuantConfigYaml, ErrorsNameFileLineAndKey) {
  EXPECT_THAT(error_of("function:\n  weight_fnction: x\n"), HasSubstr("bad.yaml:2:3: function.weight_fnction: unknown key"));
  EXPECT_THAT(error_of("function:\n  w_block_size: big\n"),
              HasSubstr("bad.yaml:2:17: function.w_block_size: expected an integer, got 'big'"));
  EXPECT_THAT(error_of("function:\n  weight_function: weight_quant_int3\n"),
              HasSubstr("function.weight_function: unknown function 'weight_quant_int3'"));
  EXPECT_THAT(error_of("function:\n  weight_function: "
                       "weight_quant_uniform_symmetric_clip_per_block_mp_int1_58_int4_static\n"
                       "  w_mixed_precision_prop: 0\n"),
              HasSubstr("w_mixed_precision_prop: 0 is ambiguous"));
  EXPECT_THAT(error_of("function:\n  weight_function: "
                       "weight_quant_uniform_symmetric_clip_per_block_mp_int1_58_int4_static\n"
                       "  w_mixed_precision_prop: 1.5\n"),
              HasSubstr("w_mixed_precision_prop: must be in (0, 1]"));
  EXPECT_THAT(error_of("function:\n  weight_function: weight_quant_uniform_symmetric_absmax_per_block_int4\n"
                       "  w_scale_factor: 2.0\n"),
              HasSubstr("w_scale_factor: function 'weight_quant_uniform_symmetric_absmax_per_block_int4' does not "
                        "take a scale factor"));
  EXPECT_THAT(error_of("function:\n  activation_function: weight_quant_uniform_symmetric_absmax_per_block_int4\n"),
              HasSubstr("activation_function: 'weight_quant_uniform_symmetric_absmax_per_block_int4' is a weight"));
  EXPECT_THAT(error_of("select:\n  exclude_names: ['(oops']\n"), HasSubstr("select.exclude_names[0]: regex '(oops'"));
  EXPECT_THAT(error_of("overrides:\n  - w_block_size: 64\n"), HasSubstr("needs a 'type' or a 'name'"));
  EXPECT_THAT(error_of("preset: w3a8\n"), HasSubstr("bad.yaml:1:9: preset: unknown quantization preset 'w3a8'"));
  EXPECT_THAT(error_of("select: [linear]\n"), HasSubstr("bad.yaml:1:9: select: expected a mapping"));
  EXPECT_THAT(error_of("function:\n  is_w_quantized: maybe\n"), HasSubstr("expected true or false"));
  EXPECT_THAT(error_of("function: {epsilon: 0}\n"), HasSubstr("epsilon: must be > 0"));
  EXPECT_THAT(error_of("a: [1,\n"), HasSubstr("bad.yaml:2:1: YAML syntax error"));
  EXPECT_THAT(error_of("method: KD\n"), HasSubstr("method: must be QAT"));
}

TEST(Presets, AllNamesValidateAndSpellingsAgree) {
  const auto names = preset_names();
  EXPECT_GE(names.size(), 30u);
  for (const auto& name : names) EXPECT_NO_THROW(validate(preset(name), name)) << name;
  for (const std::string name : {"w1.58a8kv8", "w1.88a8kv8", "w2.79a8kv8", "w4a8kv8"}) {
    for (const std::string suffix : {"", "_embint4", "_qwen3", "_mobilellm", "_embint4_qwen3", "_embint4_mobilellm"}) {
      EXPECT_TRUE(is_preset(name + suffix)) << name + suffix;
    }
  }
  EXPECT_EQ(to_yaml(preset("w1.88a8kv8")), to_yaml(preset("W1_88A8KV8")));
  const QuantConfig q = preset("w2.79a8kv8_embint4_qwen3");
  EXPECT_EQ(q.function.w_block_size, 256);
  EXPECT_EQ(q.function.a_block_size, 256);
  EXPECT_EQ(q.function.kv_block_size, 128);
  EXPECT_DOUBLE_EQ(q.function.w_mixed_precision_prop, 0.5);
  EXPECT_EQ(q.overrides.size(), 2u);
  const QuantConfig m = preset("w1.58a8kv8_mobilellm");
  EXPECT_EQ(m.function.w_block_size, 64);
  EXPECT_EQ(m.function.kv_block_size, 64);
  EXPECT_EQ(m.function.weight_function, "weight_quant_uniform_symmetric_clip_per_block_int1_58");
  EXPECT_FALSE(m.function.is_w_quantized);
  EXPECT_TRUE(preset("w4a8").function.activation_function.empty());  // reference quirk, documented
}

TEST(Presets, PaperRecipes) {
  const PaperRecipe r = paper_recipe("qwen3-0.6b", "1.88");
  EXPECT_DOUBLE_EQ(r.loss_task_alpha, 0.1);
  EXPECT_DOUBLE_EQ(r.kld_alpha, 2.0);
  EXPECT_DOUBLE_EQ(r.mse_alpha, 0.1);
  EXPECT_EQ(r.preset, "paper-qwen3-0_6b-w1_88");
  EXPECT_TRUE(is_preset(r.preset));
  EXPECT_EQ(paper_recipe("mobilellm-350m", "1.58").kld_alpha, 4.0);
  EXPECT_EQ(paper_recipe("qwen3-1.7b", "4").max_steps, 2000);
  EXPECT_EQ(paper_recipes().size(), 12u);
  EXPECT_THROW(paper_recipe("llama-7b", "1.58"), ConfigError);
}

// Qwen3-0.6B module shapes (spec §8.1): 28 layers, hidden 1024, q 2048, kv 1024, ffn 3072, tied.
std::vector<ModuleInfo> qwen3_0_6b(int64_t& total_params) {
  std::vector<ModuleInfo> modules;
  static int embed_id = 0;
  modules.push_back({"model.embed_tokens", "embedding", false, {151936, 1024}, &embed_id});
  total_params = 151936LL * 1024 + 1024;  // + final norm
  for (int l = 0; l < 28; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    modules.push_back({p + "self_attn", "", true, {}, nullptr});
    const std::vector<std::pair<std::string, std::vector<int64_t>>> linears = {
        {"self_attn.q_proj", {2048, 1024}}, {"self_attn.k_proj", {1024, 1024}}, {"self_attn.v_proj", {1024, 1024}},
        {"self_attn.o_proj", {1024, 2048}}, {"mlp.gate_proj", {3072, 1024}},   {"mlp.up_proj", {3072, 1024}},
        {"mlp.down_proj", {1024, 3072}}};
    for (const auto& [name, shape] : linears) {
      modules.push_back({p + name, "linear", false, shape, nullptr});
      total_params += shape[0] * shape[1];
    }
    total_params += 1024 + 1024 + 128 + 128;  // input/post norms, q_norm, k_norm
  }
  modules.push_back({"lm_head", "linear", false, {151936, 1024}, &embed_id});
  return modules;
}

TEST(CompressionReport, ReproducesThePapersQwen3Ratios) {
  int64_t total = 0;
  const auto modules = qwen3_0_6b(total);
  ASSERT_EQ(total, 596049920);
  const std::vector<std::string> keys = {"linear", "embedding", "kv_cache"};
  const std::vector<std::pair<std::string, double>> expected = {
      {"4", 3.9372}, {"2.79", 5.0477}, {"1.88", 6.4019}, {"1.58", 7.0306}};
  for (const auto& [bits, ratio] : expected) {
    const QuantPlan plan = plan_quantization(modules, preset("paper-qwen3-0.6b-w" + bits), keys);
    const CoverageReport report = make_report(plan, total);
    EXPECT_NEAR(report.compression_ratio(), ratio, 5e-5) << bits;
    EXPECT_EQ(report.quantized_params, 595984384) << bits;
    EXPECT_NEAR(100.0 * report.coverage(), 99.9890, 5e-5) << bits;
    EXPECT_EQ(report.kv_modules.size(), 28u);
  }
  const CoverageReport r158 = make_report(plan_quantization(modules, preset("paper-qwen3-0.6b-w1.58"), keys), total);
  EXPECT_GE(r158.compression_ratio(), 7.03);
  EXPECT_THAT(r158.to_json(), HasSubstr("\"compression_ratio\":7.03"));
  const CoverageReport r188 = make_report(plan_quantization(modules, preset("paper-qwen3-0.6b-w1.88"), keys), total);
  EXPECT_THAT(r188.to_text(), HasSubstr("mixed(12.5% int4) linear B=256 +A"));
}

TEST(CompressionReport, MixedFractionIsCeilRowsOverR) {
  ModulePlan plan{"x", "linear", {20, 256}, preset("w1.88a8kv8").function, false};
  const WeightBits bits = weight_bits(plan);
  EXPECT_DOUBLE_EQ(bits.int4_fraction, 3.0 / 20.0);  // rows 0, 8, 16
  EXPECT_DOUBLE_EQ(bits.code_bits, 0.15 * 4 + 0.85 * 1.58);
  EXPECT_DOUBLE_EQ(bits.scale_bits, 16.0 / 256);
}

}  // namespace
}  // namespace edgerazor::config
