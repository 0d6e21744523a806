// lm-eval task files without a model: Python's random and re as lm-eval uses them, prompt
// construction, metrics, and clear errors for bad task files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "edgerazor/core/error.h"
#include "edgerazor/eval/evaluator.h"
#include "edgerazor/eval/python_random.h"
#include "edgerazor/eval/task_metrics.h"
#include "edgerazor/eval/task_prompts.h"
#include "edgerazor/text/python_regex.h"
#include "fixtures/temp_dir.h"

namespace {

using edgerazor::eval::PythonRandom;
using edgerazor::text::PythonRegex;
using edgerazor_test::TempDirTest;
using edgerazor_test::write_file;
using ::testing::HasSubstr;

// Values printed by CPython 3.11's random module.
TEST(PythonRandomTest, DrawsWhatCPythonDraws) {
  PythonRandom r(1234);
  EXPECT_EQ(r.sample(10, 3), (std::vector<size_t>{7, 1, 0}));
  EXPECT_EQ(r.sample(100, 7), (std::vector<size_t>{11, 74, 4, 85, 88, 10, 12}));
  const auto big = r.sample(30, 25);
  EXPECT_EQ(std::vector<size_t>(big.begin(), big.begin() + 6), (std::vector<size_t>{24, 11, 7, 0, 26, 25}));
  PythonRandom z(0);
  EXPECT_EQ(z.getrandbits(32), 3626764237u);
  EXPECT_EQ(z.getrandbits(32), 1654615998u);
  EXPECT_DOUBLE_EQ(z.random(), 0.7579544029403025);
  EXPECT_EQ(z.choices(5, 6), (std::vector<size_t>{2, 1, 2, 2, 3, 1}));
  PythonRandom wide((uint64_t{1} << 40) + 5);  // a seed of two 32-bit words
  EXPECT_EQ(wide.getrandbits(40), 569101979940u);
  EXPECT_EQ(wide.randbelow(1000), 275u);
}

TEST(PythonRegexTest, SubAndFindallAsPython) {
  EXPECT_EQ(PythonRegex("x*").sub("-", "abxd"), "-a-b--d-");
  EXPECT_EQ(PythonRegex("(\\w+)@(\\w+)").sub("\\2 at \\1", "me@home you@work"), "home at me work at you");
  EXPECT_EQ(PythonRegex("(?P<w>a)").sub("[\\g<w>]", "banana", 2), "b[a]n[a]na");
  EXPECT_EQ(PythonRegex("(?s)A.*Z").sub("Q", "xA\nbZy"), "xQy");
  EXPECT_EQ(PythonRegex("(?i)hello").sub("bye", "HeLLo there"), "bye there");
  EXPECT_EQ(PythonRegex("(?<=a)b").sub("X", "abcb"), "aXcb");
  const auto gsm = PythonRegex("#### (\\-?[0-9\\.\\,]+)").findall("so #### 42 and #### -3.5");
  ASSERT_EQ(gsm.size(), 2u);
  EXPECT_EQ(gsm[0][0], "42");
  EXPECT_EQ(gsm[1][0], "-3.5");
  const auto tuples = PythonRegex("(a)|(b)").findall("ab");
  EXPECT_EQ(tuples, (std::vector<std::vector<std::string>>{{"a", ""}, {"", "b"}}));
  EXPECT_EQ(edgerazor::eval::count_words(" a  b\nc "), 5);
  EXPECT_THROW(PythonRegex("(unclosed"), std::invalid_argument);
}

TEST(TaskMetricsTest, ExactMatchOptionsAndFilters) {
  edgerazor::eval::MetricConfig em;
  em.name = "exact_match";
  EXPECT_FALSE(edgerazor::eval::exact_match(em, "Roxy.", "roxy"));
  em.ignore_case = em.ignore_punctuation = true;
  EXPECT_TRUE(edgerazor::eval::exact_match(em, "Roxy.", "roxy"));
  em.regexes_to_ignore = {"^the "};
  EXPECT_TRUE(edgerazor::eval::exact_match(em, "the dog", "Dog!"));
  EXPECT_TRUE(edgerazor::eval::exact_match(em, "ÄPFEL", "äpfel"));  // Unicode case, as Python's str.lower
  em.ignore_numbers = true;
  EXPECT_TRUE(edgerazor::eval::exact_match(em, "dog 42", "dog "));
  edgerazor::eval::FilterConfig f{"strict", {{"regex"}, {"take_first"}}};
  EXPECT_EQ(edgerazor::eval::apply_filter(f, {"so #### 1,000 ok"}), "1,000");
  EXPECT_EQ(edgerazor::eval::apply_filter(f, {"no answer"}), "[invalid]");
  const edgerazor::eval::FilterConfig upper{"u", {{"uppercase"}}};
  EXPECT_EQ(edgerazor::eval::apply_filter(upper, {"straße"}), "STRASSE");  // "straße".upper()
  f.steps[0].regex_pattern = "(\\d+)";
  f.steps[0].group_select = -1;  // lm-eval's flexible-extract takes the last match
  EXPECT_EQ(edgerazor::eval::apply_filter(f, {"3 then 5"}), "5");
}

TEST(TaskMetricsTest, AggregationsAndStandardErrors) {
  edgerazor::eval::MetricItems acc;
  acc.values = {1, 0, 1, 1};
  EXPECT_DOUBLE_EQ(edgerazor::eval::aggregate("mean", acc), 0.75);
  EXPECT_DOUBLE_EQ(*edgerazor::eval::standard_error("mean", acc), 0.25);  // sample stddev 0.5 / sqrt(4)
  edgerazor::eval::MetricItems one;
  one.values = {1};
  EXPECT_FALSE(edgerazor::eval::standard_error("mean", one).has_value());  // lm-eval: "N/A"
  edgerazor::eval::MetricItems ppl;
  ppl.weighted = {{-10.0, 5.0}, {-6.0, 3.0}};
  EXPECT_DOUBLE_EQ(edgerazor::eval::aggregate("weighted_perplexity", ppl), std::exp(2.0));
  EXPECT_DOUBLE_EQ(edgerazor::eval::aggregate("bits_per_byte", ppl), 2.0 / std::log(2.0));
  EXPECT_FALSE(edgerazor::eval::standard_error("weighted_perplexity", ppl).has_value());
}

// A model that answers from a table: the evaluator's bookkeeping without torch.
class FakeModel : public edgerazor::eval::LanguageModel {
 public:
  std::vector<edgerazor::eval::LoglikelihoodRequest> seen;
  std::vector<edgerazor::eval::LoglikelihoodResult> loglikelihood(const std::vector<edgerazor::eval::LoglikelihoodRequest>& r,
                                                                  const edgerazor::eval::RequestProgress&) override {
    seen = r;
    std::vector<edgerazor::eval::LoglikelihoodResult> out;
    for (const auto& q : r) out.push_back({-static_cast<double>(q.continuation.size()), q.continuation == " yes"});
    return out;
  }
  std::vector<double> loglikelihood_rolling(const std::vector<std::string>& t, const edgerazor::eval::RequestProgress&) override {
    return std::vector<double>(t.size(), -1.0);
  }
  std::vector<std::string> generate_until(const std::vector<edgerazor::eval::GenerationRequest>& r, const edgerazor::eval::RequestProgress&) override {
    return std::vector<std::string>(r.size(), " Yes.");
  }
};

class TaskFileTest : public TempDirTest {
 protected:
  std::string task(const std::string& body, const std::string& data = "{\"q\": \"Is it?\", \"choices\": [\"yes\", \"no!\"], \"label\": 0}\n"
                                                                      "{\"q\": \"Or not?\", \"choices\": [\"no\", \"yes\"], \"label\": 1}\n") {
    write_file(path("data.jsonl"), data);
    write_file(path("task.yaml"), "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: " + path("data.jsonl") + "\ntest_split: test\n" + body);
    return path("task.yaml");
  }
  std::string error_of(const std::string& file) {
    try {
      FakeModel m;
      edgerazor::eval::evaluate_tasks(m, {edgerazor::eval::load_task_config(file)}, {});
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(TaskFileTest, MultipleChoicePromptsAndMetrics) {
  FakeModel m;
  edgerazor::eval::EvaluationOptions o;
  o.log_samples = true;
  const auto out = edgerazor::eval::evaluate_tasks(
      m, {edgerazor::eval::load_task_config(task("output_type: multiple_choice\ndoc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_choice: choices\ndoc_to_target: label\n"))}, o);
  ASSERT_EQ(m.seen.size(), 4u);
  EXPECT_EQ(m.seen[0].context, "Q: Is it?\nA:");
  EXPECT_EQ(m.seen[0].continuation, " yes");
  const auto& r = out.results["results"]["t"];
  // The fake scores -len(continuation): document 1 picks " no" (-3 > -4) by acc, but per
  // character of the choice (acc_norm: -3/2 < -4/3) " yes", its gold. Ties take the first.
  EXPECT_DOUBLE_EQ(r["acc,none"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(r["acc_norm,none"].get<double>(), 1.0);
  EXPECT_EQ(out.results["n-samples"]["t"]["effective"], 2);
  ASSERT_EQ(out.samples[0].size(), 2u);
  EXPECT_EQ(out.samples[0][1]["resps"][1][0][1], "True");
}

TEST_F(TaskFileTest, RenderedChoicesTargetsAndFewShotFromTheSameSplit) {
  FakeModel m;
  const std::string file = task(
      "fewshot_split: test\nnum_fewshot: 1\noutput_type: multiple_choice\ndoc_to_text: \"{{q}}\"\n"
      "doc_to_choice: \"{{choices}}\"\ndoc_to_target: \"{{label}}\"\ndescription: \"Answer.\\n\\n\"\n");
  edgerazor::eval::evaluate_tasks(m, {edgerazor::eval::load_task_config(file)}, {});
  // The document itself is never its own example: each prompt shows the other one.
  EXPECT_EQ(m.seen[0].context, "Answer.\n\nOr not? yes\n\nIs it?");
  EXPECT_EQ(m.seen[2].context, "Answer.\n\nIs it? yes\n\nOr not?");
}

TEST_F(TaskFileTest, GenerateUntilWithFilters) {
  FakeModel m;
  const auto out = edgerazor::eval::evaluate_tasks(
      m, {edgerazor::eval::load_task_config(task("doc_to_text: \"{{q}}\"\ndoc_to_target: \"{{choices[label]}}\"\n"
                                                 "filter_list:\n  - name: w\n    filter:\n      - function: regex\n        regex_pattern: \"(\\\\w+)\"\n"
                                                 "      - function: lowercase\n      - function: take_first\n"))},
      {});
  EXPECT_DOUBLE_EQ(out.results["results"]["t"]["exact_match,w"].get<double>(), 1.0);
}

TEST_F(TaskFileTest, BadTaskFilesNameFileKeyAndDocument) {
  EXPECT_THAT(error_of(task("output_type: ranking\ndoc_to_text: q\ndoc_to_target: label\n")),
              ::testing::AllOf(HasSubstr("task.yaml"), HasSubstr("output_type"), HasSubstr("ranking")));
  EXPECT_THAT(error_of(task("output_type: multiple_choice\ndoc_to_text: \"{{question}}\"\ndoc_to_choice: choices\ndoc_to_target: label\n")),
              ::testing::AllOf(HasSubstr("task.yaml: doc_to_text, document 0"), HasSubstr("'question' is undefined")));
  EXPECT_THAT(error_of(task("output_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: choices\ndoc_to_target: 5\n")),
              ::testing::AllOf(HasSubstr("doc_to_target, document 0"), HasSubstr("index 5 is outside the 2 choices")));
  EXPECT_THAT(error_of(task("output_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: choices\ndoc_to_target: label\n", "\n")),
              ::testing::AllOf(HasSubstr("data.jsonl"), HasSubstr("no documents")));
  EXPECT_THAT(error_of(task("output_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: choices\ndoc_to_target: label\nprocess_docs: !function utils.f\n")),
              ::testing::AllOf(HasSubstr("task.yaml"), HasSubstr("process_docs"), HasSubstr("!function")));
  EXPECT_THAT(error_of(task("output_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: choices\ndoc_to_target: label\nmetric_list:\n  - metric: f1\n")),
              ::testing::AllOf(HasSubstr("metric_list[0].metric"), HasSubstr("'f1' is not supported")));
  EXPECT_THAT(error_of(task("doc_to_text: q\ndoc_to_target: label\ngeneration_kwargs:\n  do_sample: true\n")),
              HasSubstr("generation_kwargs.do_sample"));
  EXPECT_THAT(error_of(task("doc_to_text: q\ndoc_to_target: label\nshuffle: true\n")), ::testing::AllOf(HasSubstr("task.yaml"), HasSubstr("shuffle")));
  EXPECT_THAT(error_of(task("output_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: choices\ndoc_to_target: label\n", "{\"q\": 1}\nnot json\n")),
              ::testing::AllOf(HasSubstr("data.jsonl"), HasSubstr("line 2")));
  EXPECT_THAT(error_of(task("output_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: choices\ndoc_to_target: label\n",
                            "{\"q\": \"a\", \"q\": \"b\", \"choices\": [\"x\"], \"label\": 0}\n")),
              ::testing::AllOf(HasSubstr("data.jsonl"), HasSubstr("line 1"), HasSubstr("key 'q' given twice")));
}

TEST_F(TaskFileTest, IncludeMergesABaseFile) {
  write_file(path("base.yaml"), "output_type: multiple_choice\ndoc_to_choice: choices\ndoc_to_target: label\ndoc_to_text: \"{{q}}\"\n");
  const auto config = edgerazor::eval::load_task_config(task("include: base.yaml\ndoc_to_text: \"Q: {{q}}\"\n"));
  EXPECT_EQ(config.output_type, "multiple_choice");
  EXPECT_EQ(config.doc_to_text.as_string(), "Q: {{q}}");  // the including file wins
}

}  // namespace
