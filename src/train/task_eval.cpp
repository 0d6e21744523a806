#include "edgerazor/train/task_eval.h"

#include <cstdio>

#include "edgerazor/eval/evaluator.h"
#include "edgerazor/io/model_tokenizer.h"
#include "edgerazor/model/task_model.h"
#include "edgerazor/quant/weight_quantizer.h"

namespace edgerazor::train {

TrainingTaskEval::TrainingTaskEval(const config::EvalSection& section, const std::string& tokenizer_dir) : section_(section) {
  for (const auto& file : section.tasks) tasks_.push_back(eval::load_task_config(file));
  tokenizer_ = io::load_model_tokenizer(tokenizer_dir);
}

Scalars TrainingTaskEval::run(model::CausalLMImpl& model) const {
  model::TaskModelOptions mo;
  mo.batch_size = section_.batch_size;
  model::TaskLanguageModel lm(model, *tokenizer_, mo);
  // The weights as the step's forward sees them, Q(latent), not the float latent weights.
  quant::QuantizedWeightsScope quantized(model);
  eval::EvaluationOptions eo;
  eo.limit = section_.limit;
  eo.num_fewshot = section_.num_fewshot;
  eo.bootstrap_iters = 1000;  // a training-time estimate; edgerazor-eval reports lm-eval's 100000
  const auto out = eval::evaluate_tasks(lm, tasks_, eo);
  Scalars values;
  for (const auto& [task, entry] : out.results["results"].items())
    for (const auto& [key, value] : entry.items())
      if (key.find(',') != std::string::npos && value.is_number()) values.emplace_back(task + "/" + key, value.get<double>());
  return values;
}

std::string TrainingTaskEval::summary(const Scalars& values) {
  std::string out;
  for (const auto& [name, value] : values) {
    if (name.find("_stderr,") != std::string::npos) continue;
    std::string shown = name;
    const size_t slash = shown.find('/'), comma = shown.rfind(",none");
    if (comma != std::string::npos && comma + 5 == shown.size()) shown.resize(comma);
    if (slash != std::string::npos) shown[slash] = ' ';
    char buf[32];
    std::snprintf(buf, sizeof(buf), " %.4g", value);
    out += (out.empty() ? "" : ", ") + shown + buf;
  }
  return out;
}

}  // namespace edgerazor::train
