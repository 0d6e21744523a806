// Export formats on real and small models: packed round trips bit for bit, GGUF tensors read back
// with our reader equal codes * fp16(scale) (and the fake-quant weights to fp16 rounding of the
// scales), Q/K permutation, run directories, the HF fake-quant folder, reports, and the CLI.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "edgerazor/config/quant_presets.h"
#include "edgerazor/core/error.h"
#include "edgerazor/export/export.h"
#include "edgerazor/export/gguf.h"
#include "edgerazor/export/gguf_export.h"
#include "edgerazor/export/gguf_names.h"
#include "edgerazor/export/hf_export.h"
#include "edgerazor/quant/inject.h"
#include "export_test_util.h"
#include "fixtures/python_reference.h"

namespace {
using namespace edgerazor::exporter;
using namespace export_test;
using ::testing::HasSubstr;
using nlohmann::json;

// codes * fp16(scale) in the original shape: what a GGUF block type stores.
at::Tensor fp16_dequant(const edgerazor::quant::QuantizedTensor& q) {
  const at::Tensor v = q.codes.to(at::kFloat).mul(q.scales.to(at::kHalf).to(at::kFloat));
  return edgerazor::quant::from_blocks(v, q.shape);
}

at::Tensor gguf_tensor(const GgufFile& g, const std::string& name, const std::vector<int64_t>& shape) {
  const GgufTensorInfo* t = g.find_tensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (!t) return {};
  auto v = g.dequantize(*t);
  return at::from_blob(v.data(), {static_cast<int64_t>(v.size())}, at::kFloat).clone().reshape(shape);
}

QuantizedModel stories_ternary(const fs::path& dir) {
  write_text(dir / "tq.yaml", kStoriesTernaryYaml);
  ExportSourceOptions o;
  o.source = kStories;
  o.config_file = (dir / "tq.yaml").string();
  return load_quantized_model(o);
}

// Every tensor of a GGUF file against the model: block types hold exactly codes * fp16(scale),
// float types the (permuted) fake-quant values; and the fake-quant weights within fp16 rounding.
void expect_gguf_matches(const QuantizedModel& qm, const std::string& path, std::map<std::string, int>* types = nullptr) {
  const auto g = GgufFile::open(path);
  for (const ExportTensor& t : qm.tensors) {
    const std::string name = *gguf_tensor_name(t.name);
    const std::vector<int64_t> shape(t.value.sizes().begin(), t.value.sizes().end());
    at::Tensor got = gguf_tensor(*g, name, shape);
    const int64_t heads = qk_permutation_heads(t.name, qm.config());
    if (heads > 0) {  // undo llama.cpp's row order: apply the inverse by permuting indices
      const at::Tensor idx = permute_qk_rows(at::arange(shape[0], at::kLong).to(at::kFloat), heads).to(at::kLong);
      got = at::empty_like(got).index_copy_(0, idx, got);
    }
    const GgmlType type = g->find_tensor(name)->type;
    if (types) ++(*types)[ggml_type_name(type)];
    const at::Tensor value = t.value.to(at::kFloat);
    if (type == GgmlType::kF32) {
      EXPECT_TRUE(at::equal(got, value)) << t.name;
    } else if (type == GgmlType::kF16) {
      EXPECT_TRUE(at::equal(got, value.to(at::kHalf).to(at::kFloat))) << t.name;
    } else {
      ASSERT_TRUE(t.quantized) << t.name;
      EXPECT_TRUE(at::equal(got, fp16_dequant(t.q))) << t.name << " " << ggml_type_name(type);
      // Only the fp16 rounding of the scales separates it from the fake-quant weight.
      EXPECT_TRUE(at::allclose(got, value, /*rtol=*/1.0 / 2048, /*atol=*/1e-7)) << t.name;
    }
  }
}

class ExportTest : public TempDirTest {};

TEST_F(ExportTest, PackedRoundTripIsBitExact) {
  const QuantizedModel qm = stories_ternary(dir_);
  for (const TernaryPacking packing : {TernaryPacking::kBase3, TernaryPacking::kTwoBit}) {
    const std::string path = (dir_ / "p.safetensors").string();
    PackedOptions po;
    po.ternary = packing;
    const WrittenSizes sizes = write_packed(qm, path, po);
    const PackedCheckpoint ck = read_packed(path);
    ASSERT_EQ(ck.tensors.size(), qm.tensors.size());
    for (const ExportTensor& t : qm.tensors) {
      const ExportTensor* back = ck.find(t.name);
      ASSERT_NE(back, nullptr) << t.name;
      EXPECT_EQ(back->quantized, t.quantized) << t.name;
      EXPECT_TRUE(at::equal(back->value, t.value)) << t.name;  // bit-identical fake-quant weights
      EXPECT_EQ(back->value.scalar_type(), t.value.scalar_type());
      if (!t.quantized) continue;
      EXPECT_TRUE(at::equal(back->q.codes, t.q.codes)) << t.name;
      EXPECT_TRUE(at::equal(back->q.scales, t.q.scales)) << t.name;
      EXPECT_EQ(back->q.spec.function, t.q.spec.function);
      EXPECT_EQ(back->q.spec.block_size, t.q.spec.block_size);
    }
    // Base-3 packs 5 codes per byte: the whole file is well under a third of bf16.
    if (packing == TernaryPacking::kBase3) EXPECT_LT(sizes.file_bytes * 3, 2u * 260032u);
    // A model loaded from the packed file computes exactly what the quantized model computes.
    auto loaded = load_packed_model(path);
    const at::Tensor ids = at::tensor({1, 403, 407, 261, 378}, at::kLong).unsqueeze(0);
    at::NoGradGuard g;
    edgerazor::model::CausalLM original = qm.model;
    EXPECT_TRUE(at::equal(loaded->forward(ids).logits, original->forward(ids).logits));
  }
}

TEST_F(ExportTest, PackedRoundTripMixedAndInt4) {
  make_wide_model(dir_ / "wide");
  for (const std::string preset : {"w1.88a8kv8", "w2.79a8kv8", "w4a8kv8", "w1.58a8kv8"}) {
    ExportSourceOptions o;
    o.source = (dir_ / "wide").string();
    o.preset = preset;
    const QuantizedModel qm = load_quantized_model(o);
    const std::string path = (dir_ / ("p_" + preset + ".safetensors")).string();
    write_packed(qm, path);
    const PackedCheckpoint ck = read_packed(path);
    int mixed = 0;
    for (const ExportTensor& t : qm.tensors) {
      const ExportTensor* back = ck.find(t.name);
      ASSERT_NE(back, nullptr);
      EXPECT_TRUE(at::equal(back->value, t.value)) << preset << " " << t.name;
      if (!t.quantized) continue;
      EXPECT_TRUE(at::equal(back->q.codes, t.q.codes)) << preset << " " << t.name;
      if (t.q.int4_groups.defined()) {
        ++mixed;
        EXPECT_TRUE(at::equal(back->q.int4_groups, t.q.int4_groups));
        EXPECT_TRUE(t.q.int4_groups.any().item<bool>());
      }
    }
    EXPECT_EQ(mixed > 0, preset == "w1.88a8kv8" || preset == "w2.79a8kv8") << preset;
  }
}

TEST_F(ExportTest, GgufFromCodesReadsBackExactly) {
  const QuantizedModel qm = stories_ternary(dir_);
  const std::string path = (dir_ / "t.gguf").string();
  const GgufExportResult r = write_gguf(qm, path);
  std::map<std::string, int> types;
  expect_gguf_matches(qm, path, &types);
  // Rows of 64 hold ternary blocks of 64 as Q4_0; down_proj rows of 172 fit no block type.
  EXPECT_EQ(types["Q4_0"], 1 + 5 * 6);
  EXPECT_EQ(types["F16"], 5);
  EXPECT_EQ(types["F32"], 11);
  ASSERT_EQ(r.warnings.size(), 5u);
  EXPECT_THAT(r.warnings[0], HasSubstr("model.layers.0.mlp.down_proj.weight' fits no quantized GGUF type"));
  const auto g = GgufFile::open(path);
  EXPECT_EQ(g->find("general.file_type")->u, 2u);
  EXPECT_EQ(g->find("general.quantization_version")->u, 2u);
  EXPECT_EQ(g->find("llama.attention.layer_norm_rms_epsilon")->type, GgufType::kFloat32);
  EXPECT_EQ(g->find("tokenizer.ggml.tokens")->strings.size(), 512u);
  EXPECT_THAT(g->find("edgerazor.quantization")->s, HasSubstr("w_block_size: 64"));
}

TEST_F(ExportTest, TernaryBlocksOf256BecomeTq2AndTq1) {
  make_wide_model(dir_ / "wide");
  ExportSourceOptions o;
  o.source = (dir_ / "wide").string();
  o.preset = "w1.58a8kv8";
  const QuantizedModel qm = load_quantized_model(o);
  for (const std::string type : {"auto", "tq1_0", "q4_0"}) {
    GgufExportOptions go;
    go.type = type;
    const std::string path = (dir_ / (type + ".gguf")).string();
    const GgufExportResult r = write_gguf(qm, path, go);
    EXPECT_TRUE(r.warnings.empty());
    std::map<std::string, int> types;
    expect_gguf_matches(qm, path, &types);
    const std::string expected = type == "auto" ? "TQ2_0" : type == "tq1_0" ? "TQ1_0" : "Q4_0";
    EXPECT_EQ(types[expected], 1 + 2 * 7) << type;
    const uint64_t size = std::filesystem::file_size(path);
    if (type == "auto") EXPECT_EQ(GgufFile::open(path)->find("general.file_type")->u, 37u);
    if (type == "tq1_0") EXPECT_EQ(GgufFile::open(path)->find("general.file_type")->u, 36u);
    EXPECT_GT(size, 0u);
  }
  EXPECT_LT(std::filesystem::file_size(dir_ / "tq1_0.gguf"), std::filesystem::file_size(dir_ / "auto.gguf"));
  // INT4 and mixed weights go to Q4_0 from codes.
  for (const std::string preset : {"w4a8kv8", "w1.88a8kv8"}) {
    o.preset = preset;
    const QuantizedModel q4 = load_quantized_model(o);
    std::map<std::string, int> types;
    write_gguf(q4, (dir_ / "q4.gguf").string());
    expect_gguf_matches(q4, (dir_ / "q4.gguf").string(), &types);
    EXPECT_EQ(types["Q4_0"], 1 + 2 * 7) << preset;
  }
}

std::string file_bytes(const fs::path& p) { return read_text(p); }

// The streamed export (checkpoint on disk, a tensor or a slice of rows at a time) writes the same
// bytes, sizes and warnings as the export of the model loaded whole, over every type rule.
TEST_F(ExportTest, StreamedGgufIsByteIdenticalToTheInMemoryExport) {
  make_wide_model(dir_ / "wide");
  make_wide_model(dir_ / "qwen", "qwen3", 11);
  // A ternary embedding row whose scale overflows fp16, in the last slice: slices before it fit
  // TQ2_0, the whole tensor does not, so the stream must start that tensor again whole.
  make_wide_model(dir_ / "huge");
  {
    auto m = edgerazor::io::load_pretrained((dir_ / "huge").string());
    at::NoGradGuard g;
    m->model->embed_tokens->weight[511].fill_(1e5);
    edgerazor::io::SaveOptions so;
    so.tokenizer_source_dir = kStories;
    edgerazor::io::save_pretrained(*m, (dir_ / "huge").string(), so);
  }
  write_text(dir_ / "tq.yaml", kStoriesTernaryYaml);
  // Blocks of 4 fit no GGUF block type: every tensor falls back to F16, the file is not quantized
  // after all, and the header the stream left room for shrinks (commit moves the data).
  write_text(dir_ / "b4.yaml", "quantization:\n  select:\n    target_types: [linear, embedding]\n  function:\n"
                               "    weight_function: weight_quant_uniform_symmetric_clip_per_block_int1_58\n"
                               "    w_block_size: 4\n");
  // Tied weights quantized through lm_head alone: the embedding is written as lm_head's fake-quant values.
  write_text(dir_ / "head.yaml", "quantization:\n  select:\n    target_types: [linear]\n  function:\n"
                                 "    weight_function: weight_quant_uniform_symmetric_clip_per_block_int1_58\n"
                                 "    w_block_size: 256\n");
  struct Case {
    std::string source, preset, config, type;
    at::ScalarType dtype = at::kFloat;
  };
  const std::vector<Case> cases = {
      {kStories, "", (dir_ / "tq.yaml").string(), "auto"},  // q/k permutation, Q4_0 and F16 fallbacks
      {(dir_ / "wide").string(), "w1.58a8kv8", "", "auto"},
      {(dir_ / "wide").string(), "w1.58a8kv8", "", "tq1_0"},
      {(dir_ / "wide").string(), "w1.58a8kv8", "", "q4_0"},
      {(dir_ / "wide").string(), "w1.58a8kv8", "", "f16"},
      {(dir_ / "wide").string(), "w1.88a8kv8", "", "auto"},  // mixed: never sliced
      {(dir_ / "wide").string(), "w4a8kv8", "", "auto"},
      {(dir_ / "wide").string(), "", "", "f32"},              // unquantized
      {(dir_ / "qwen").string(), "w1.58a8kv8", "", "auto", at::kBFloat16},
      {(dir_ / "huge").string(), "w1.58a8kv8", "", "auto"},
      {kStories, "", (dir_ / "b4.yaml").string(), "auto"},
      {(dir_ / "qwen").string(), "", (dir_ / "head.yaml").string(), "auto"},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.source + " " + c.preset + c.config + " " + c.type);
    ExportSourceOptions o;
    o.source = c.source;
    o.preset = c.preset;
    o.config_file = c.config;
    o.dtype = c.dtype;
    GgufExportOptions go;
    go.type = c.type;
    go.max_slice_elements = 3 * 256;  // slices of 3 rows
    const std::string whole = (dir_ / ("whole" + std::to_string(n) + ".gguf")).string();
    const std::string streamed = (dir_ / ("streamed" + std::to_string(n++) + ".gguf")).string();
    const QuantizedModel qm = load_quantized_model(o);
    const GgufExportResult a = write_gguf(qm, whole, go);
    const StreamedGguf b = stream_gguf(o, streamed, go);
    EXPECT_TRUE(file_bytes(whole) == file_bytes(streamed));
    EXPECT_EQ(a.warnings, b.written.warnings);
    EXPECT_EQ(a.sizes.file_bytes, b.written.sizes.file_bytes);
    EXPECT_EQ(a.sizes.file_bytes, fs::file_size(streamed));
    EXPECT_EQ(a.sizes.tensor_bytes, b.written.sizes.tensor_bytes);
    EXPECT_EQ(a.sizes.stored_as, b.written.sizes.stored_as);
    EXPECT_EQ(qm.description, b.description);
    EXPECT_EQ(qm.coverage.to_json(), b.coverage.to_json());
    ASSERT_EQ(qm.tensors.size(), b.tensors.size());
    for (size_t i = 0; i < qm.tensors.size(); ++i) {
      EXPECT_EQ(qm.tensors[i].name, b.tensors[i].name);
      EXPECT_EQ(qm.tensors[i].quantized, b.tensors[i].quantized);
    }
    if (c.config == (dir_ / "b4.yaml").string())
      EXPECT_EQ(GgufFile::open(streamed)->find("general.quantization_version"), nullptr);
    if (c.source == (dir_ / "huge").string()) {
      EXPECT_EQ(b.written.sizes.stored_as.at("model.embed_tokens.weight"), "F16");
      EXPECT_EQ(b.written.sizes.stored_as.at("model.layers.0.mlp.up_proj.weight"), "TQ2_0");
    }
  }
}

TEST_F(ExportTest, StreamedGgufRefusesADamagedCheckpointAndLeavesNoFile) {
  make_wide_model(dir_ / "wide");
  {
    auto m = edgerazor::io::load_pretrained((dir_ / "wide").string());
    at::NoGradGuard g;
    m->model->layers[1]->as<edgerazor::model::DecoderLayerImpl>()->mlp->up_proj->weight[3][5] = NAN;
    edgerazor::io::save_pretrained(*m, (dir_ / "wide").string());
  }
  ExportSourceOptions o;
  o.source = (dir_ / "wide").string();
  o.preset = "w1.58a8kv8";
  const std::string out = (dir_ / "out.gguf").string();
  try {
    stream_gguf(o, out);
    FAIL() << "a NaN weight was exported";
  } catch (const edgerazor::FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("model.layers.1.mlp.up_proj.weight' holds 1 NaN"));
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST_F(ExportTest, QkPermutationFollowsTheConverter) {
  // convert_hf_to_gguf.py: w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2): rows of each
  // head go from [first half, second half] to interleaved pairs.
  const at::Tensor rows = at::arange(8, at::kFloat).unsqueeze(1);
  const at::Tensor p = permute_qk_rows(rows, 2).squeeze(1);
  EXPECT_TRUE(at::equal(p, at::tensor({0.f, 2.f, 1.f, 3.f, 4.f, 6.f, 5.f, 7.f})));
  EXPECT_EQ(qk_permutation_heads("model.layers.1.self_attn.k_proj.weight", edgerazor::model::load_model_config(kStories)), 4);
}

TEST_F(ExportTest, RunDirectoryPicksTheNewestCompleteCheckpoint) {
  const fs::path run = dir_ / "run";
  auto model = edgerazor::io::load_pretrained(kStories);
  const auto qc = edgerazor::config::parse_quant_config_yaml(kStoriesTernaryYaml, "tq.yaml");
  for (int step : {5, 10, 20}) {
    const fs::path ck = run / "checkpoints" / ("step_" + std::to_string(step));
    edgerazor::io::SaveOptions so;
    so.tokenizer_source_dir = kStories;
    edgerazor::io::save_pretrained(*model, ck.string(), so);
    write_text(ck / "quantization.yaml", edgerazor::config::to_yaml(qc));
    if (step != 20) write_text(ck / "DONE", std::to_string(step) + "\n");  // step_20 is unfinished
  }
  ExportSourceOptions o;
  o.source = run.string();
  EXPECT_EQ(resolve_source(o).checkpoint, "step_10");
  o.checkpoint = "step_5";
  EXPECT_EQ(resolve_source(o).checkpoint, "step_5");
  o.checkpoint = "step_20";
  EXPECT_THROW(
      {
        try {
          resolve_source(o);
        } catch (const edgerazor::ConfigError& e) {
          EXPECT_THAT(e.what(), HasSubstr("incomplete (no DONE marker)"));
          throw;
        }
      },
      edgerazor::ConfigError);
  o.checkpoint.clear();
  ExportOptions eo;
  eo.source = o;
  eo.format = "gguf";
  eo.out = (dir_ / "run.gguf").string();
  const ExportReport report = export_model(eo);
  EXPECT_THAT(report.source, HasSubstr("step_10"));
  EXPECT_NEAR(report.coverage.coverage(), 259328.0 / 260032.0, 1e-12);  // the run's quantization.yaml
  // A checkpoint folder alone works too, and gives the same file.
  eo.source.source = (run / "checkpoints" / "step_10").string();
  eo.out = (dir_ / "ck.gguf").string();
  export_model(eo);
  EXPECT_EQ(read_text(dir_ / "run.gguf"), read_text(dir_ / "ck.gguf"));
}

TEST_F(ExportTest, HfFolderHoldsFakeQuantWeightsAndQuantizationConfig) {
  const QuantizedModel qm = stories_ternary(dir_);
  HfExportOptions ho;
  ho.dtype = at::kFloat;
  write_hf(qm, (dir_ / "hf32").string(), ho);
  write_hf(qm, (dir_ / "hf16").string());  // bf16 default
  const json cfg = json::parse(read_text(dir_ / "hf32" / "config.json"));
  EXPECT_FALSE(cfg.contains("quantization_config"));  // transformers would refuse an unknown method
  const json& q = cfg.at("edgerazor_quantization");
  EXPECT_EQ(q.at("format"), "edgerazor fake-quant");
  EXPECT_EQ(q.at("is_w_quantized"), true);
  EXPECT_EQ(q.at("weight_bits"), 1.58);
  EXPECT_EQ(q.at("activation_bits"), 16);
  EXPECT_EQ(q.at("w_block_size"), 64);
  EXPECT_THAT(q.at("edgerazor_config_yaml").get<std::string>(), HasSubstr("down_proj"));
  EXPECT_TRUE(fs::exists(dir_ / "hf32" / "tokenizer.model"));
  auto m32 = edgerazor::io::load_pretrained((dir_ / "hf32").string());
  auto m16 = edgerazor::io::load_pretrained((dir_ / "hf16").string());
  const auto p32 = edgerazor::io::checkpoint_tensors(*m32);
  const auto p16 = edgerazor::io::checkpoint_tensors(*m16);
  for (size_t i = 0; i < p32.size(); ++i) {
    const ExportTensor* t = qm.find(p32[i].first);
    ASSERT_NE(t, nullptr);
    EXPECT_TRUE(at::equal(p32[i].second, t->value)) << t->name;
    EXPECT_TRUE(at::equal(p16[i].second, t->value.to(at::kBFloat16).to(at::kFloat))) << t->name;
  }
}

TEST(ExportReportTest, Qwen3SizesFromAConfigAlone) {
  const auto cfg = edgerazor::model::parse_model_config(R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
    "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000, "hidden_act": "silu", "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "attention_bias": false})");
  const SizeEstimate e = estimate_sizes(cfg, edgerazor::config::preset("paper-qwen3-0.6b-w1.58"));
  EXPECT_EQ(e.coverage.total_params, 596049920);
  EXPECT_EQ(e.coverage.quantized_params, 595984384);
  EXPECT_GE(e.coverage.compression_ratio(), 7.03);  // the paper's 7.03x (spec §8.2)
  EXPECT_NEAR(e.coverage.compression_ratio(), 7.0306, 5e-5);
  // TQ2_0 linears + Q4_0 embedding + F32 norms: the spec's 201.3 MB (0.1875 GiB).
  EXPECT_EQ(e.gguf_bytes, 440401920ull / 256 * 66 + 155582464ull / 32 * 18 + 65536ull * 4);
  // Base-3 codes cost 1.6 bits (not 1.58): the real packed file reaches 6.985x.
  EXPECT_GT(static_cast<double>(e.bf16_bytes) / static_cast<double>(e.packed_bytes), 6.98);
  std::printf("Qwen3-0.6B w1.58: bf16 %llu B, packed %llu B (%.3fx), GGUF %llu B (%.3fx), theoretical %.4fx\n",
              static_cast<unsigned long long>(e.bf16_bytes), static_cast<unsigned long long>(e.packed_bytes),
              static_cast<double>(e.bf16_bytes) / static_cast<double>(e.packed_bytes),
              static_cast<unsigned long long>(e.gguf_bytes),
              static_cast<double>(e.bf16_bytes) / static_cast<double>(e.gguf_bytes), e.coverage.compression_ratio());
}

TEST_F(ExportTest, CliWritesOutputAndReportAndFailsCleanly) {
  write_text(dir_ / "tq.yaml", kStoriesTernaryYaml);
  const std::string exe = kBin + "/edgerazor-export ";
  const Result ok = run(exe + kStories + " --config " + (dir_ / "tq.yaml").string() + " --format packed --out " +
                        (dir_ / "m.safetensors").string());
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("ternary as ternary_base3"));
  EXPECT_THAT(ok.out, HasSubstr("smaller"));
  const json report = json::parse(read_text(dir_ / "m.safetensors.report.json"));
  EXPECT_EQ(report.at("file_bytes").get<uint64_t>(), fs::file_size(dir_ / "m.safetensors"));
  EXPECT_EQ(report.at("bf16_bytes").get<uint64_t>(), 2u * 260032u);
  EXPECT_GT(report.at("file_ratio").get<double>(), 3.0);
  const Result hf = run(exe + kStories + " --config " + (dir_ / "tq.yaml").string() + " --format hf --out " +
                        (dir_ / "hf").string() + "/");  // a folder that does not exist yet, named with a slash
  ASSERT_EQ(hf.code, 0) << hf.err;
  EXPECT_TRUE(fs::exists(dir_ / "hf" / "export_report.json"));
  // transformers loads the folder unchanged and computes what our model computes from it.
  std::string why;
  if (const auto python = edgerazor_test::reference_python(why)) {
    const std::vector<int64_t> ids = {1, 403, 407, 261, 378, 434, 270, 500, 310, 2, 1, 65};
    std::string csv;
    for (auto id : ids) csv += (csv.empty() ? "" : ",") + std::to_string(id);
    const Result t = run(*python + " " + kSource + "/tests/reference/hf_logits.py " + (dir_ / "hf").string() + " " + csv +
                         " " + (dir_ / "hf_logits.json").string());
    ASSERT_EQ(t.code, 0) << t.err;
    const auto rows = json::parse(read_text(dir_ / "hf_logits.json")).at("logits").get<std::vector<std::vector<float>>>();
    auto ours = edgerazor::io::load_pretrained((dir_ / "hf").string());
    at::NoGradGuard no_grad;
    const at::Tensor logits = ours->forward(at::tensor(ids, at::kLong).view({1, -1})).logits[0];
    ASSERT_EQ(rows.size(), ids.size());
    double worst = 0;
    for (size_t i = 0; i < rows.size(); ++i)
      worst = std::max(worst, (logits[i] - at::tensor(rows[i])).abs().max().item<double>());
    EXPECT_LT(worst, 1e-4) << "transformers vs our logits of the exported folder";
  }
  const Result g = run(exe + kStories + " --format gguf --gguf-type f32 --out " + (dir_ / "f.gguf").string());
  ASSERT_EQ(g.code, 0) << g.err;
  const Result inspect = run(exe + "--inspect " + (dir_ / "f.gguf").string());
  EXPECT_THAT(inspect.out, HasSubstr("blk.4.ffn_down.weight"));
  expect_no_tmp();

  const Result bad_format = run(exe + kStories + " --format onnx --out " + (dir_ / "x").string());
  EXPECT_EQ(bad_format.code, 2);
  EXPECT_THAT(bad_format.err, HasSubstr("unknown format 'onnx'"));
  const Result bad_type = run(exe + kStories + " --format gguf --gguf-type q2_k --out " + (dir_ / "y.gguf").string());
  EXPECT_EQ(bad_type.code, 2);
  EXPECT_THAT(bad_type.err, HasSubstr("--gguf-type"));
  EXPECT_FALSE(fs::exists(dir_ / "y.gguf"));
  // An explicit type that a ternary tensor cannot take (rows of 64 < TQ2_0's 256) is refused, not
  // silently replaced by Q4_0.
  const Result tq2 = run(exe + kStories + " --config " + (dir_ / "tq.yaml").string() + " --format gguf --gguf-type tq2_0 --out " +
                         (dir_ / "t.gguf").string());
  EXPECT_EQ(tq2.code, 2);
  EXPECT_THAT(tq2.err, HasSubstr("--gguf-type: tq2_0 cannot store the ternary tensor"));
  EXPECT_THAT(tq2.err, HasSubstr("not a multiple of 256"));
  EXPECT_FALSE(fs::exists(dir_ / "t.gguf"));
  const Result q4 = run(exe + kStories + " --config " + (dir_ / "tq.yaml").string() + " --format gguf --gguf-type auto --out " +
                        (dir_ / "a.gguf").string());
  EXPECT_EQ(q4.code, 0) << q4.err;
  const Result bad_preset = run(exe + kStories + " --preset w1.58a8kv8 --format gguf --out " + (dir_ / "z.gguf").string());
  EXPECT_EQ(bad_preset.code, 2);
  EXPECT_THAT(bad_preset.err, HasSubstr("does not divide the row length 64"));
  EXPECT_FALSE(fs::exists(dir_ / "z.gguf"));
  const Result missing = run(exe + (dir_ / "nope").string() + " --format gguf --out " + (dir_ / "w.gguf").string());
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("is not a directory"));
  expect_no_tmp();
}

}  // namespace
