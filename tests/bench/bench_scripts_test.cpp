// The benchmark scripts run end to end on tiny shapes and their results parse: bench/peers.sh
// (edgerazor against the Python peers, a peer over the memory ceiling named as not fitting) and
// bench/export_memory.sh (random-weight folder, streamed GGUF export, peak RSS).
// No timing assertions: the figures belong to bench/README.md.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "fixtures/subprocess.h"
#include "fixtures/temp_dir.h"
#include "fixtures/test_paths.h"

namespace {

using edgerazor_test::Result;
using edgerazor_test::last_line;
using edgerazor_test::run_merged;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kSource = EDGERAZOR_SOURCE_DIR;
const std::string kTiny = " --vocab 512 --dim 256 --layers 1 --heads 4 --kv-heads 2 --ffn 512 --seq 32 --batch 2 --steps 2 --dtype fp32";

std::string env() { return "EDGERAZOR_BIN=" + std::string(EDGERAZOR_BIN_DIR) + " "; }

class BenchScripts : public edgerazor_test::TempDirTest {};

TEST_F(BenchScripts, PeersRunSideBySideAndTheirResultsParse) {
  const Result r = run_merged(env() + "PEERS='edgerazor eager torchao' RESULTS=" + path("peers") + " " + kSource +
                              "/bench/peers.sh" + kTiny + " --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("| edgerazor |"));
  std::ifstream in(path("peers.json"));
  const auto j = nlohmann::json::parse(in);
  ASSERT_EQ(j["peers"].size(), 3u);
  for (const auto& p : j["peers"]) {
    EXPECT_TRUE(p["fits"].get<bool>()) << p.dump();
    EXPECT_GT(p["tokens_per_s"].get<double>(), 0.0) << p.dump();
    EXPECT_GT(p["peak_rss_mb"].get<double>(), 10.0) << p.dump();
    EXPECT_EQ(p["threads"], 1);
    EXPECT_EQ(p["config"]["dim"], 256);
  }
  EXPECT_THAT(j["peers"][2]["impl"].get<std::string>(), HasSubstr("torchao"));
  EXPECT_GT(j["verdict"]["speedup_vs_best"].get<double>(), 0.0);
  // Same step, same loss: the hand-written eager quantizers are ours (torchao's int2 is not).
  EXPECT_NEAR(j["peers"][0]["loss"].get<double>(), j["peers"][1]["loss"].get<double>(), 1e-3);
}

TEST_F(BenchScripts, APeerOverTheMemoryCeilingIsNamedNotHidden) {
  const Result r = run_merged(env() + "PEERS=eager LIMIT_MB=64 RESULTS=" + path("peers") + " " + kSource +
                              "/bench/peers.sh" + kTiny + " --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream in(path("peers.json"));
  const auto j = nlohmann::json::parse(in);
  ASSERT_EQ(j["peers"].size(), 1u);
  EXPECT_FALSE(j["peers"][0]["fits"].get<bool>());
  EXPECT_THAT(j["peers"][0]["why"].get<std::string>(), HasSubstr("killed above 64 MiB"));
  EXPECT_THAT(r.out, HasSubstr("killed above 64 MiB"));
}

TEST_F(BenchScripts, ExportMemoryMeasuresAStreamedExport) {
  // A narrow Qwen3 with the real vocabulary and tokenizer: rows of 256 take TQ2_0.
  fs::create_directories(dir_ / "tiny-qwen3");
  std::ofstream(dir_ / "tiny-qwen3" / "config.json")
      << R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 256, "intermediate_size": 512,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 128,
            "vocab_size": 151936, "max_position_embeddings": 4096, "rms_norm_eps": 1e-06, "rope_theta": 1000000,
            "hidden_act": "silu", "tie_word_embeddings": true, "attention_bias": false, "bos_token_id": 151643,
            "eos_token_id": 151645, "torch_dtype": "bfloat16"})";
  const Result r = run_merged(env() + "CONFIG=" + path("tiny-qwen3") + " MODELS=" + path("models") + " OUT_DIR=" +
                              path("out") + " " + kSource + "/bench/export_memory.sh");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(last_line(r.out));
  EXPECT_EQ(j["bench"], "export_memory");
  EXPECT_GT(j["peak_rss_mb"].get<double>(), 10.0);
  EXPECT_GT(j["floor_rss_mb"].get<double>(), 10.0);
  EXPECT_GT(j["checkpoint_bytes"].get<double>(), 2.0 * 151936 * 256);
  EXPECT_GT(j["gguf_bytes"].get<double>(), 0.0);
  EXPECT_LT(j["gguf_bytes"].get<double>(), j["checkpoint_bytes"].get<double>() / 4);
  EXPECT_TRUE(fs::exists(dir_ / "out" / "model.gguf.report.json"));
}

}  // namespace
