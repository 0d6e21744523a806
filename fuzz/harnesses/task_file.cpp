// lm-evaluation-harness task files with their data: YAML keys, includes, Jinja prompt templates,
// few-shot settings, filters and metrics, JSON Lines documents; then every prompt is built and
// every metric computed against a stand-in model. The input is the YAML, a line "@@DATA@@", then
// the data file; "@DATA@" in the YAML names that file.
#include "edgerazor/core/error.h"
#include "edgerazor/eval/evaluator.h"
#include "fuzz_support.h"

namespace {

// Deterministic answers derived from the request text: no model, every code path of the scoring.
class StandInModel : public edgerazor::eval::LanguageModel {
 public:
  std::vector<edgerazor::eval::LoglikelihoodResult> loglikelihood(const std::vector<edgerazor::eval::LoglikelihoodRequest>& r,
                                                                  const edgerazor::eval::RequestProgress&) override {
    std::vector<edgerazor::eval::LoglikelihoodResult> out;
    for (const auto& q : r) out.push_back({-static_cast<double>((q.context.size() * 31 + q.continuation.size()) % 97), q.continuation.size() % 2 == 0});
    return out;
  }
  std::vector<double> loglikelihood_rolling(const std::vector<std::string>& t, const edgerazor::eval::RequestProgress&) override {
    std::vector<double> out;
    for (const auto& s : t) out.push_back(-static_cast<double>(s.size()) * 0.7);
    return out;
  }
  std::vector<std::string> generate_until(const std::vector<edgerazor::eval::GenerationRequest>& r, const edgerazor::eval::RequestProgress&) override {
    std::vector<std::string> out;
    for (const auto& q : r) out.push_back(q.context.substr(q.context.size() / 2));
    return out;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::string docs;
  const size_t split = text.find("\n@@DATA@@\n");
  if (split != std::string::npos) {
    docs = text.substr(split + 10);
    text.resize(split);
  }
  const std::string data_file = edgerazor_fuzz::write_scratch("docs.jsonl", docs);
  for (size_t at = text.find("@DATA@"); at != std::string::npos; at = text.find("@DATA@", at + data_file.size()))
    text.replace(at, 6, data_file);
  const std::string task_file = edgerazor_fuzz::write_scratch("task.yaml", text);
  edgerazor_fuzz::expect_clear_errors([&] {
    const auto task = edgerazor::eval::load_task_config(task_file);
    StandInModel model;
    edgerazor::eval::EvaluationOptions options;
    options.log_samples = true;
    options.bootstrap_iters = 100;
    options.limit = 64;
    edgerazor::eval::evaluate_tasks(model, {task}, options);
  });
  return 0;
}
