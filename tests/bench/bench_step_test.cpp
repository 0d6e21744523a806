// edgerazor-bench step on tiny shapes (its JSON line has every promised field, sane values)
// and its flag errors.
// No timing assertions: speed is measured by the benchmarks themselves (bench/README.md).
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "fixtures/subprocess.h"
#include "edgerazor/model/model_config.h"
#include "fixtures/test_paths.h"


namespace {

using edgerazor_test::Result;
using edgerazor_test::last_line;
using edgerazor_test::run_merged;

const std::string kBench = std::string(EDGERAZOR_BIN_DIR) + "/edgerazor-bench";

TEST(BenchStep, TinyStepPrintsTheJsonLine) {
  const Result r = run_merged(kBench + " step --vocab 1024 --dim 256 --layers 2 --heads 4 --kv-heads 2 --ffn 512"
                                " --seq 32 --batch 2 --steps 2 --dtype fp32 --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(last_line(r.out));
  for (const char* key : {"tokens_per_s", "peak_rss_mb", "step_ms", "mfu", "matmul_peak_gflops", "flops_per_step",
                          "flop_model", "phases_ms", "dtype", "threads"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["dtype"], "fp32");
  EXPECT_EQ(j["threads"], 1);
  EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["step_ms"].get<double>(), 0.0);
  EXPECT_GT(j["peak_rss_mb"].get<double>(), 10.0);
  EXPECT_GT(j["matmul_peak_gflops"].get<double>(), 0.0);
  EXPECT_GT(j["mfu"].get<double>(), 0.0);
  EXPECT_LT(j["mfu"].get<double>(), 1.5);
  // The FLOP model: 4 forward passes of 2*B*T*(L*(4 C^2 (with H_kv = H/2: 3 C^2) + 3 C F) + V C) + attention.
  const double C = 256, F = 512, L = 2, V = 1024, B = 2, T = 32, D = 64, H = 4;
  const double per_token = L * (C * C + 2 * C * 2 * D + C * C + 3 * C * F) + V * C;
  const double expected = 4 * (2 * B * T * per_token + 4 * B * L * H * T * T * D);
  EXPECT_DOUBLE_EQ(j["flops_per_step"].get<double>(), expected);
  // A sane loss: 0.1 * CE (about 0.1 * ln V at init) plus small distillation terms.
  EXPECT_GT(j["loss"].get<double>(), 0.05 * std::log(V));
  EXPECT_LT(j["loss"].get<double>(), 0.3 * std::log(V));
}

// --model: any HF folder's config.json gives the shapes (here stories260K's, with its weights), and
// bench/qwen3-0.6b is the Qwen3-0.6B shape the bench keeps (read only: too big to step in a test).
TEST(BenchStep, ModelFolderGivesTheShapes) {
  const std::string stories = std::string(EDGERAZOR_SHARED_DATA_DIR) + "/models/stories260K-hf";
  const Result r = run_merged(kBench + " step --model " + stories + " --quant " + EDGERAZOR_SOURCE_DIR +
                              "/configs/tiny-stories260k-w1.58.yaml --seq 32 --batch 2 --steps 2 --dtype fp32 --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(last_line(r.out));
  EXPECT_EQ(j["config"]["vocab"], 512);
  EXPECT_EQ(j["config"]["dim"], 64);
  EXPECT_EQ(j["config"]["layers"], 5);
  EXPECT_EQ(j["config"]["kv_heads"], 4);
  EXPECT_EQ(j["config"]["ffn"], 172);
  EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0);
  const auto shape = edgerazor::model::load_model_config(std::string(EDGERAZOR_SOURCE_DIR) + "/bench/qwen3-0.6b/config.json");
  EXPECT_EQ(shape.architecture, edgerazor::model::Architecture::kQwen3);
  EXPECT_EQ(shape.vocab_size, 151936);
  EXPECT_EQ(shape.num_hidden_layers, 28);
  EXPECT_EQ(shape.head_dim, 128);
  EXPECT_TRUE(shape.tie_word_embeddings);
  const Result missing = run_merged(kBench + " step --model /nonexistent --steps 1");
  EXPECT_NE(missing.code, 0);
  EXPECT_THAT(missing.out, ::testing::HasSubstr("/nonexistent"));
}

TEST(BenchStep, BadFlagsExitTwo) {
  const Result r = run_merged(kBench + " step --dtype fp16");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("--dtype"));
  const Result heads = run_merged(kBench + " step --dim 100 --heads 8 --steps 1");
  EXPECT_EQ(heads.code, 2) << heads.out;
  EXPECT_THAT(heads.out, ::testing::HasSubstr("--heads"));
}

TEST(BenchStep, PrintsATableByDefault) {
  const Result r = run_merged(kBench + " step --vocab 512 --dim 256 --layers 1 --heads 2 --kv-heads 1 --ffn 512"
                                " --seq 16 --batch 1 --steps 2 --dtype fp32 --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("tokens/s"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("loss_forward"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("--json prints every field"));
  EXPECT_EQ(r.out.find("{\"bench\""), std::string::npos);
}

}  // namespace
