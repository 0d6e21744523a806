// edgerazor-eval --tasks from the command line: a packed checkpoint scores as the PTQ model it was
// exported from, results files are written whole, and bad input fails with a clear message and
// no output.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fixtures/subprocess.h"
#include "fixtures/temp_dir.h"

namespace {

using edgerazor_test::kBin;
using edgerazor_test::kStories;
using edgerazor_test::read_file;
using edgerazor_test::run;
using edgerazor_test::write_file;
using json = nlohmann::json;

class EvalCliTest : public edgerazor_test::TempDirTest {
 protected:
  std::string make_tasks() {
    write_file(path("docs.jsonl"),
               "{\"q\": \"Once upon a time, there was a little girl.\", \"c\": [\" She liked to play.\", \" The car is red.\"], \"l\": 0, \"t\": \"Once upon a time, there was a little girl named Lily.\"}\n"
               "{\"q\": \"Tom had a big ball.\", \"c\": [\" It was night.\", \" He threw it to his friend.\"], \"l\": 1, \"t\": \"Tom had a big red ball and he liked it.\"}\n");
    const std::string data = "dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: " + path("docs.jsonl") + "\ntest_split: test\n";
    write_file(path("mc.yaml"), "task: mc\n" + data + "output_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: c\ndoc_to_target: l\n");
    write_file(path("ppl.yaml"), "task: ppl\n" + data + "output_type: loglikelihood_rolling\ndoc_to_target: t\n");
    return path("mc.yaml") + "," + path("ppl.yaml");
  }
};

TEST_F(EvalCliTest, PackedCheckpointScoresAsThePtqModel) {
  const std::string tasks = make_tasks(), config = std::string(EDGERAZOR_SOURCE_DIR) + "/configs/tiny-stories260k-w1.58.yaml";
  const auto exported = run(kBin + "/edgerazor-export " + kStories + " --config " + config + " --format packed --out " + path("m.packed.safetensors"));
  ASSERT_EQ(exported.code, 0) << exported.err;
  const auto ptq = run(kBin + "/edgerazor-eval " + kStories + " --tasks " + tasks + " --quant " + config + " --output " + path("ptq.json") + " --quiet");
  ASSERT_EQ(ptq.code, 0) << ptq.err;
  const auto packed = run(kBin + "/edgerazor-eval " + path("m.packed.safetensors") + " --tokenizer " + kStories + " --tasks " + tasks +
                          " --output " + path("packed.json") + " --quiet");
  ASSERT_EQ(packed.code, 0) << packed.err;
  EXPECT_NE(packed.err.find("packed checkpoint"), std::string::npos) << packed.err;
  const json a = json::parse(read_file(path("ptq.json"))), b = json::parse(read_file(path("packed.json")));
  EXPECT_EQ(a["results"]["mc"]["acc,none"], b["results"]["mc"]["acc,none"]);
  const double pa = a["results"]["ppl"]["word_perplexity,none"], pb = b["results"]["ppl"]["word_perplexity,none"];
  EXPECT_NEAR(pb, pa, 1e-5 * pa);
  // And quantization matters: the float teacher scores the text otherwise.
  const auto fp = run(kBin + "/edgerazor-eval " + kStories + " --tasks " + tasks + " --output " + path("fp.json") + " --quiet");
  ASSERT_EQ(fp.code, 0) << fp.err;
  EXPECT_GT(std::abs(json::parse(read_file(path("fp.json")))["results"]["ppl"]["word_perplexity,none"].get<double>() - pa), 1e-3 * pa);
  // A packed file carries no tokenizer.
  const auto no_tok = run(kBin + "/edgerazor-eval " + path("m.packed.safetensors") + " --tasks " + tasks);
  EXPECT_NE(no_tok.code, 0);
  EXPECT_NE(no_tok.err.find("--tokenizer"), std::string::npos) << no_tok.err;
  expect_no_tmp();
}

TEST_F(EvalCliTest, BadInputFailsClearlyWithoutOutput) {
  make_tasks();
  write_file(path("bad.yaml"), "task: bad\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: " + path("docs.jsonl") +
                                   "\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: c\ndoc_to_target: \"{{l + 5}}\"\n");
  const auto r = run(kBin + "/edgerazor-eval " + kStories + " --tasks " + path("bad.yaml") + " --output " + path("out"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("bad.yaml: doc_to_target, document 0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("outside the 2 choices"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("out/results.json")));
  const auto missing = run(kBin + "/edgerazor-eval " + kStories + " --tasks " + path("nope.yaml"));
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("nope.yaml"), std::string::npos) << missing.err;
  const auto samples = run(kBin + "/edgerazor-eval " + kStories + " --tasks " + path("mc.yaml") + " --log-samples");
  EXPECT_NE(samples.code, 0);
  EXPECT_NE(samples.err.find("--log-samples"), std::string::npos) << samples.err;
  const auto limit = run(kBin + "/edgerazor-eval " + kStories + " --text " + path("docs.jsonl") + " --limit 3");
  EXPECT_NE(limit.code, 0);
  EXPECT_NE(limit.err.find("--tasks"), std::string::npos) << limit.err;
}

}  // namespace
