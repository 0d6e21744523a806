// The trainer's downstream tasks (the `eval` section of the YAML): lm-evaluation-harness task
// files scored on the student as it trains (its quantizers active), each metric returned as
// "TASK/METRIC,FILTER" for metrics.jsonl (type "tasks"), so edgerazor-plot draws it beside the
// loss.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "edgerazor/config/train_config.h"
#include "edgerazor/eval/task_config.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/text/tokenizer.h"
#include "edgerazor/train/metrics.h"

namespace edgerazor::train {

class TrainingTaskEval {
 public:
  // Reads the task files and the tokenizer of `tokenizer_dir` (the student's folder) now.
  TrainingTaskEval(const config::EvalSection& section, const std::string& tokenizer_dir);
  // Every task's metrics and stderr as scalars; the model is back in its mode afterwards.
  Scalars run(model::CausalLMImpl& model) const;
  // "story_cloze acc 0.575, story_next_word exact_match 0.25" for the progress line.
  static std::string summary(const Scalars& values);

 private:
  config::EvalSection section_;
  std::vector<eval::TaskConfig> tasks_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
};

}  // namespace edgerazor::train
