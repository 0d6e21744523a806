// edgerazor-eval --tasks against lm-evaluation-harness itself (pinned, `hf` backend, float32):
// the same task files (built from TinyStories validation text, plus a few-shot task drawing from
// its own test split), on stories260K and on a tiny random Qwen3 with the real Qwen3 tokenizer
// that transformers builds, plain and under the chat template. Per item: prompts equal,
// log-likelihoods within 1e-4, greedy flags, generations, acc / acc_norm / exact_match identical;
// aggregates and their stderr equal; word perplexity within 1e-4 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "fixtures/python_reference.h"
#include "fixtures/subprocess.h"
#include "fixtures/temp_dir.h"

namespace {

using edgerazor_test::kBin;
using edgerazor_test::kData;
using edgerazor_test::kStories;
using edgerazor_test::read_file;
using json = nlohmann::json;

class LmEvalReferenceTest : public edgerazor_test::TempDirTest {};

// [[["-8.07", "False"]]] (ours, lm-eval's log) or [[[-8.07, false]]] (lm-eval in memory) -> the leaf list.
json leaf(json v) {
  while (v.is_array() && v.size() == 1 && v[0].is_array()) v = v[0];
  return v;
}
double as_double(const json& v) { return v.is_string() ? std::stod(v.get<std::string>()) : v.get<double>(); }
std::string as_bool_text(const json& v) { return v.is_string() ? v.get<std::string>() : (v.get<bool>() ? "True" : "False"); }

TEST_F(LmEvalReferenceTest, SameScoresAsLmEvalHfBackend) {
  const std::string tasks_dir = path("tasks");
  const auto made = edgerazor_test::run("python3 '" + std::string(EDGERAZOR_SOURCE_DIR) + "/scripts/make_story_tasks.py' '" + kData +
                                        "/text/tinystories-valid-sample.txt' '" + tasks_dir + "' --docs 24");
  ASSERT_EQ(made.code, 0) << made.err;
  // A few-shot task that draws its examples from the split it evaluates (lm-eval leaves the
  // document itself out) with the first_n sampler's sibling, the seeded default one.
  edgerazor_test::write_file(tasks_dir + "/story_cloze_self.yaml",
                             "include: story_cloze.yaml\ntask: story_cloze_self\nfewshot_split: test\nnum_fewshot: 3\ndescription: \"Pick the next sentence.\\n\\n\"\n");
  std::vector<std::string> task_files;
  for (const char* t : {"story_cloze", "story_cloze_self", "story_next_word", "story_perplexity"}) task_files.push_back(tasks_dir + "/" + t + ".yaml");
  const std::string qwen3 = path("qwen3");
  struct Run {
    std::string model;
    bool chat;
  };
  const std::vector<Run> runs = {{kStories, false}, {qwen3, false}, {qwen3, true}};
  json request = {{"tasks", task_files}, {"tiny_qwen3", {{"dir", qwen3}, {"tokenizer_dir", kData + "/models/qwen3-tokenizer"}}}, {"runs", json::array()}};
  for (const auto& r : runs) request["runs"].push_back({{"model", r.model}, {"apply_chat_template", r.chat}, {"limit", r.chat ? json(8) : json(nullptr)}});
  std::string why;
  const auto reference = edgerazor_test::run_python_reference("lm_eval_reference.py", request, why, "install_lm_eval.sh");
  if (!reference) GTEST_SKIP() << why;

  std::string joined;
  for (const auto& t : task_files) joined += (joined.empty() ? "" : ",") + t;
  for (size_t r = 0; r < runs.size(); ++r) {
    SCOPED_TRACE(runs[r].model + (runs[r].chat ? " with the chat template" : ""));
    const std::string out = path("ours_" + std::to_string(r));
    const auto ours_run = edgerazor_test::run("'" + kBin + "/edgerazor-eval' '" + runs[r].model + "' --tasks '" + joined + "' --output '" + out +
                                              "' --log-samples --quiet --batch-size 4" + (runs[r].chat ? " --apply-chat-template --limit 8" : ""));
    ASSERT_EQ(ours_run.code, 0) << ours_run.err;
    EXPECT_NE(ours_run.out.find("|story_cloze|"), std::string::npos) << ours_run.out;  // the summary table
    const json results = json::parse(read_file(out + "/results.json"));
    for (const auto& [task, expected] : (*reference)["runs"][r].items()) {
      SCOPED_TRACE(task);
      std::map<std::pair<std::string, int64_t>, json> ours;
      std::istringstream lines(read_file(out + "/samples_" + task + ".jsonl"));
      for (std::string line; std::getline(lines, line);) {
        const json s = json::parse(line);
        ours[{s["filter"].get<std::string>(), s["doc_id"].get<int64_t>()}] = s;
      }
      ASSERT_EQ(ours.size(), expected["samples"].size());
      for (const auto& want : expected["samples"]) {
        const auto it = ours.find({want["filter"].get<std::string>(), want["doc_id"].get<int64_t>()});
        ASSERT_NE(it, ours.end()) << want["doc_id"];
        const json& got = it->second;
        SCOPED_TRACE("document " + want["doc_id"].dump() + ", filter " + want["filter"].get<std::string>());
        ASSERT_EQ(got["arguments"].size(), want["arguments"].size());
        for (const auto& [k, args] : want["arguments"].items()) {
          EXPECT_EQ(got["arguments"][k]["arg_0"], args["arg_0"]);  // the prompt, byte for byte
          if (args.contains("arg_1") && args["arg_1"].is_string()) EXPECT_EQ(got["arguments"][k]["arg_1"], args["arg_1"]);
        }
        ASSERT_EQ(got["resps"].size(), want["resps"].size());
        for (size_t i = 0; i < want["resps"].size(); ++i) {
          const json a = leaf(want["resps"][i]), b = leaf(got["resps"][i]);
          if (task == "story_next_word") {
            EXPECT_EQ(b, a);
            EXPECT_EQ(got["filtered_resps"], want["filtered_resps"]);
          } else if (task == "story_perplexity") {
            EXPECT_NEAR(as_double(b[0]), as_double(a[0]), 1e-4 * std::abs(as_double(a[0])));
          } else {
            EXPECT_NEAR(as_double(b[0]), as_double(a[0]), 1e-4);
            EXPECT_EQ(as_bool_text(b[1]), as_bool_text(a[1]));
          }
        }
        for (const char* metric : {"acc", "acc_norm", "exact_match"})
          if (want.contains(metric)) EXPECT_EQ(got[metric].get<double>(), want[metric].get<double>()) << metric;
      }
      const json& agg = results["results"][task];
      for (const auto& [key, value] : expected["results"].items()) {
        if (key.find(',') == std::string::npos) continue;
        ASSERT_TRUE(agg.contains(key)) << key;
        if (value.is_string()) EXPECT_EQ(agg[key], value) << key;  // "N/A"
        else EXPECT_NEAR(agg[key].get<double>(), value.get<double>(), 1e-4 * std::max(1.0, std::abs(value.get<double>()))) << key;
      }
      EXPECT_EQ(results["n-samples"][task]["effective"], expected["samples"].size() / std::max<size_t>(1, task == "story_next_word" ? 2 : 1));
    }
  }
}

}  // namespace
