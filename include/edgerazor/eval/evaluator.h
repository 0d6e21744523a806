// Runs lm-evaluation-harness tasks against a language model and writes lm-eval's results JSON
// ("results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", ...) and, on
// request, its per-sample log (doc_id, doc, target, arguments, resps, filtered_resps, filter,
// metrics and each metric's value). Torch-free: the model is the LanguageModel interface, which
// edgerazor/model/task_model.h implements over our transformer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgerazor/eval/task_config.h"
#include "edgerazor/eval/task_prompts.h"

namespace edgerazor::eval {

struct LoglikelihoodRequest {
  std::string context, continuation;
};
struct LoglikelihoodResult {
  double logprob = 0;
  bool is_greedy = false;  // every continuation token is the argmax of its position
};
struct GenerationRequest {
  std::string context;
  std::vector<std::string> until;
  int64_t max_gen_toks = 256;
};
// done: requests finished so far (for a progress bar).
using RequestProgress = std::function<void(size_t done, size_t total)>;

// lm-eval's LM API (loglikelihood, loglikelihood_rolling, generate_until).
class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests,
                                                         const RequestProgress& progress) = 0;
  virtual std::vector<double> loglikelihood_rolling(const std::vector<std::string>& texts, const RequestProgress& progress) = 0;
  virtual std::vector<std::string> generate_until(const std::vector<GenerationRequest>& requests, const RequestProgress& progress) = 0;
};

struct EvaluationOptions {
  int64_t limit = 0;            // > 0: only the first `limit` documents of each task
  uint64_t fewshot_seed = 1234;  // lm-eval's --fewshot_seed default
  int64_t num_fewshot = -1;      // >= 0: overrides each task's num_fewshot (--num-fewshot)
  int64_t bootstrap_iters = 100000;
  bool log_samples = false;
  ChatFormatter chat;  // --apply-chat-template
  bool fewshot_as_multiturn = false;
  // Called per task with the request kind ("loglikelihood", ...) before its requests run.
  std::function<RequestProgress(const std::string& task, const std::string& kind, size_t total)> progress;
};

struct EvaluationOutput {
  nlohmann::ordered_json results;                   // lm-eval's results file
  std::vector<std::vector<nlohmann::ordered_json>> samples;  // per task (when log_samples)
};

// lm-eval's summary table (|Tasks|Version|Filter|n-shot|Metric| |Value| |Stderr|) in markdown.
std::string results_table(const nlohmann::ordered_json& results);

EvaluationOutput evaluate_tasks(LanguageModel& model, const std::vector<TaskConfig>& tasks, const EvaluationOptions& options);

}  // namespace edgerazor::eval
