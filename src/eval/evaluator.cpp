// lm_eval.evaluator.evaluate for one model: requests per task, process_results, aggregation,
// and lm-eval's results / samples JSON.
#include "edgerazor/eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <set>

#include "edgerazor/core/error.h"
#include "edgerazor/eval/task_metrics.h"

namespace edgerazor::eval {
namespace {

using json = nlohmann::ordered_json;

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// str(float) / str(bool) as lm-eval writes responses into its sample log.
std::string py_str(double v) { return Value(v).str(); }
std::string py_str(bool v) { return v ? "True" : "False"; }

template <typename T>
size_t argmax(const std::vector<T>& v) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

json value_json(const Value& v) { return json::parse(v.to_json()); }

struct DocWork {
  size_t id = 0;
  Value doc, target;
  std::string context;
  std::vector<std::string> choices;
  std::vector<size_t> gold;  // multiple choice: the right choice(s)
  bool multiple_target = false;
  size_t first_request = 0, request_count = 0;
  std::string reference;                 // generate_until: the gold text(s) for exact_match
  std::vector<std::string> references;
};

}  // namespace

EvaluationOutput evaluate_tasks(LanguageModel& model, const std::vector<TaskConfig>& tasks, const EvaluationOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  EvaluationOutput out;
  json results = json::object(), configs = json::object(), versions = json::object(), nshot = json::object(),
       higher = json::object(), nsamples = json::object();
  for (TaskConfig task : tasks) {
    if (options.num_fewshot >= 0 && !task.num_fewshot_set_to_zero) {
      task.num_fewshot = options.num_fewshot;
      task.dumped["num_fewshot"] = task.num_fewshot;
    }
    const TaskData data = load_task_data(task);
    TaskPrompts prompts(task, data, options.fewshot_seed, options.chat, options.fewshot_as_multiturn);
    const std::vector<Value>& docs = prompts.eval_docs();
    const size_t n = options.limit > 0 ? std::min(docs.size(), static_cast<size_t>(options.limit)) : docs.size();
    const bool mutual_info = std::any_of(task.metrics.begin(), task.metrics.end(), [](const MetricConfig& m) { return m.name == "acc_mutual_info"; });

    // Requests, in document order (few-shot examples are drawn in this order, as lm-eval does).
    std::vector<DocWork> work(n);
    std::vector<LoglikelihoodRequest> ll_requests;
    std::vector<std::string> rolling_requests;
    std::vector<GenerationRequest> gen_requests;
    for (size_t i = 0; i < n; ++i) {
      DocWork& w = work[i];
      w.id = i;
      w.doc = docs[i];
      if (task.output_type != "loglikelihood_rolling") w.context = prompts.context(w.doc, i);
      w.target = prompts.doc_to_target(w.doc, i);
      if (task.output_type == "multiple_choice") {
        w.choices = prompts.doc_to_choice(w.doc, i);
        const std::string delimiter = prompts.choice_delimiter();
        w.first_request = ll_requests.size();
        for (const auto& c : w.choices) ll_requests.push_back({w.context, delimiter + c});
        if (mutual_info)
          for (const auto& c : w.choices) ll_requests.push_back({"", delimiter + c});
        w.request_count = ll_requests.size() - w.first_request;
        const auto gold_index = [&](const Value& g) -> size_t {
          if (g.kind() == Value::Kind::kInt || g.kind() == Value::Kind::kBool) {  // Python: True == 1
            if (g.as_int() < 0 || g.as_int() >= static_cast<int64_t>(w.choices.size()))
              throw FormatError(prompts.where("doc_to_target", i), "answer index " + std::to_string(g.as_int()) +
                                                                             " is outside the " + std::to_string(w.choices.size()) + " choices");
            return static_cast<size_t>(g.as_int());
          }
          if (g.is_string()) {
            for (size_t k = 0; k < w.choices.size(); ++k)
              if (w.choices[k] == g.as_string()) return k;
            throw FormatError(prompts.where("doc_to_target", i), "answer '" + g.as_string() + "' is not one of the choices");
          }
          throw FormatError(prompts.where("doc_to_target", i), "answer " + g.str() + " is neither a choice index nor a choice");
        };
        if (w.target.is_array()) {
          w.multiple_target = true;
          for (const auto& g : w.target.as_array()) w.gold.push_back(gold_index(g));
        } else {
          w.gold.push_back(gold_index(w.target));
        }
      } else if (task.output_type == "loglikelihood") {
        if (!w.target.is_string()) throw FormatError(prompts.where("doc_to_target", i), "must give a string continuation, not " + w.target.str());
        w.first_request = ll_requests.size();
        w.request_count = 1;
        ll_requests.push_back({w.context, w.target.as_string()});
      } else if (task.output_type == "loglikelihood_rolling") {
        if (!w.target.is_string()) throw FormatError(prompts.where("doc_to_target", i), "must give the text to score, not " + w.target.str());
        w.first_request = rolling_requests.size();
        w.request_count = 1;
        rolling_requests.push_back(w.target.as_string());
      } else {
        w.first_request = gen_requests.size();
        w.request_count = 1;
        gen_requests.push_back({w.context, task.generation->until, task.generation->max_gen_toks});
        Value gold = w.target;
        if (!task.doc_to_choice.is_undefined()) {
          const auto choices = prompts.doc_to_choice(w.doc, i);
          if ((gold.kind() != Value::Kind::kInt && gold.kind() != Value::Kind::kBool) || gold.as_int() < 0 || gold.as_int() >= static_cast<int64_t>(choices.size()))
            throw FormatError(prompts.where("doc_to_target", i), "must be an index into the " + std::to_string(choices.size()) + " choices, not " + gold.str());
          w.reference = choices[static_cast<size_t>(gold.as_int())];
        } else if (gold.is_array()) {
          w.multiple_target = true;
          for (const auto& g : gold.as_array()) w.references.push_back(g.str());
        } else {
          w.reference = gold.str();
        }
      }
    }

    // The model.
    const auto progress_for = [&](const char* kind, size_t total) {
      return options.progress ? options.progress(task.task, kind, total) : RequestProgress();
    };
    std::vector<LoglikelihoodResult> ll;
    std::vector<double> rolling;
    std::vector<std::string> generated;
    if (!ll_requests.empty()) ll = model.loglikelihood(ll_requests, progress_for("loglikelihood", ll_requests.size()));
    if (!rolling_requests.empty()) rolling = model.loglikelihood_rolling(rolling_requests, progress_for("loglikelihood_rolling", rolling_requests.size()));
    if (!gen_requests.empty()) generated = model.generate_until(gen_requests, progress_for("generate_until", gen_requests.size()));

    // process_results per filter, then aggregation.
    std::vector<json> samples;
    json entry = {{"name", task.task}, {"alias", task.task_alias.empty() ? task.task : task.task_alias}, {"sample_len", n}};
    for (const auto& filter : task.filters) {
      std::vector<MetricItems> items(task.metrics.size());
      for (const DocWork& w : work) {
        json sample = {{"doc_id", w.id}, {"doc", options.log_samples ? value_json(w.doc) : json()},
                       {"target", w.target.is_string() ? w.target.as_string() : w.target.str()}};
        json arguments = json::object(), resps = json::array(), filtered = json::array();
        std::vector<double> metric_values(task.metrics.size(), 0.0);
        if (task.output_type == "multiple_choice" || task.output_type == "loglikelihood") {
          std::vector<double> lls;
          std::vector<bool> greedy;
          for (size_t r = 0; r < w.request_count; ++r) {
            const auto& q = ll_requests[w.first_request + r];
            const auto& res = ll[w.first_request + r];
            arguments["gen_args_" + std::to_string(r)] = {{"arg_0", q.context}, {"arg_1", q.continuation}};
            resps.push_back(json::array({json::array({py_str(res.logprob), py_str(res.is_greedy)})}));
            filtered.push_back(json::array({py_str(res.logprob), py_str(res.is_greedy)}));
            lls.push_back(res.logprob);
            greedy.push_back(res.is_greedy);
          }
          for (size_t m = 0; m < task.metrics.size(); ++m) {
            const std::string& name = task.metrics[m].name;
            if (task.output_type == "loglikelihood") {
              metric_values[m] = name == "perplexity" ? lls[0] : static_cast<double>(greedy[0]);
              continue;
            }
            const size_t k = w.choices.size();
            std::vector<double> scores(lls.begin(), lls.begin() + static_cast<std::ptrdiff_t>(k));
            if (name == "acc_norm" || name == "acc_bytes")
              for (size_t c = 0; c < k; ++c)
                scores[c] /= static_cast<double>(name == "acc_norm" ? code_points(w.choices[c]) : w.choices[c].size());
            if (name == "acc_mutual_info")
              for (size_t c = 0; c < k; ++c) scores[c] -= lls[k + c];
            const size_t pred = argmax(scores);
            const bool hit = std::find(w.gold.begin(), w.gold.end(), pred) != w.gold.end();
            if (name == "exact_match")
              metric_values[m] = std::any_of(w.gold.begin(), w.gold.end(), [&](size_t g) { return greedy[g]; }) ? 1.0 : 0.0;
            else
              metric_values[m] = hit ? 1.0 : 0.0;
          }
        } else if (task.output_type == "loglikelihood_rolling") {
          const double logprob = rolling[w.first_request];
          arguments["gen_args_0"] = {{"arg_0", w.target.as_string()}};
          resps.push_back(json::array({py_str(logprob)}));
          filtered.push_back(py_str(logprob));
          const double words = static_cast<double>(count_words(w.target.as_string()));
          const double bytes = static_cast<double>(w.target.as_string().size());
          for (size_t m = 0; m < task.metrics.size(); ++m)
            items[m].weighted.emplace_back(logprob, task.metrics[m].name == "word_perplexity" ? words : bytes);
        } else {
          const std::string& response = generated[w.first_request];
          const std::string prediction = apply_filter(filter, {response});
          arguments["gen_args_0"] = {{"arg_0", w.context},
                                     {"arg_1", task.dumped["generation_kwargs"]}};
          resps.push_back(json::array({response}));
          filtered.push_back(prediction);
          for (size_t m = 0; m < task.metrics.size(); ++m) {
            if (w.multiple_target) {
              bool any = false;
              for (const auto& ref : w.references) any |= exact_match(task.metrics[m], prediction, ref);
              metric_values[m] = any ? 1.0 : 0.0;
            } else {
              metric_values[m] = exact_match(task.metrics[m], prediction, w.reference) ? 1.0 : 0.0;
            }
          }
        }
        sample["arguments"] = arguments;
        sample["resps"] = resps;
        sample["filtered_resps"] = filtered;
        sample["filter"] = filter.name;
        json names = json::array();
        for (const auto& m : task.metrics) names.push_back(m.name);
        sample["metrics"] = names;
        for (size_t m = 0; m < task.metrics.size(); ++m) {
          if (task.output_type == "loglikelihood_rolling") {
            sample[task.metrics[m].name] = json::array({items[m].weighted.back().first, items[m].weighted.back().second});
          } else {
            items[m].values.push_back(metric_values[m]);
            sample[task.metrics[m].name] = metric_values[m];
          }
        }
        if (options.log_samples) samples.push_back(std::move(sample));
      }
      for (size_t m = 0; m < task.metrics.size(); ++m) {
        const auto& metric = task.metrics[m];
        entry[metric.name + "," + filter.name] = aggregate(metric.aggregation, items[m]);
        const auto se = standard_error(metric.aggregation, items[m], options.bootstrap_iters);
        entry[metric.name + "_stderr," + filter.name] = se ? json(*se) : json("N/A");
      }
    }
    results[task.task] = entry;
    configs[task.task] = task.dumped;
    versions[task.task] = task.version;
    nshot[task.task] = task.num_fewshot;
    json hib = json::object();
    for (const auto& m : task.metrics) hib[m.name] = m.higher_is_better;
    higher[task.task] = hib;
    nsamples[task.task] = {{"original", docs.size()}, {"effective", n}};
    out.samples.push_back(std::move(samples));
  }
  out.results = {{"results", results}, {"group_subtasks", json::object()}, {"configs", configs}, {"versions", versions},
                 {"n-shot", nshot}, {"higher_is_better", higher}, {"n-samples", nsamples}};
  out.results["config"] = {{"limit", options.limit > 0 ? json(options.limit) : json(nullptr)},
                           {"bootstrap_iters", options.bootstrap_iters},
                           {"fewshot_seed", options.fewshot_seed}};
  out.results["fewshot_as_multiturn"] = options.fewshot_as_multiturn;
  out.results["chat_template"] = nullptr;
  const std::time_t now = std::time(nullptr);
  out.results["date"] = static_cast<double>(now);
  out.results["total_evaluation_time_seconds"] =
      std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return out;
}

std::string results_table(const json& results) {
  const auto number = [](const json& v) {
    if (!v.is_number()) return v.is_string() ? v.get<std::string>() : v.dump();
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.4f", v.get<double>());
    return std::string(buf);
  };
  std::string out = "|Tasks|Version|Filter|n-shot|Metric|   |Value|   |Stderr|\n|-----|------:|------|-----:|------|---|----:|---|-----:|\n";
  for (const auto& [task, entry] : results["results"].items()) {
    bool first = true;
    for (const auto& [key, value] : entry.items()) {
      const size_t comma = key.find(',');
      if (comma == std::string::npos || key.find("_stderr,") != std::string::npos) continue;
      const std::string metric = key.substr(0, comma), filter = key.substr(comma + 1);
      const json& stderr_value = entry.contains(metric + "_stderr," + filter) ? entry[metric + "_stderr," + filter] : json("N/A");
      const bool higher = results["higher_is_better"][task].value(metric, true);
      const json& version = results["versions"][task];
      out += "|" + (first ? task : std::string()) + "|" + (first ? (version.is_string() ? version.get<std::string>() : version.dump()) : std::string()) +
             "|" + filter + "|" + (first ? results["n-shot"][task].dump() : std::string()) + "|" + metric + "|" + (higher ? "↑" : "↓") +
             "|" + number(value) + "|±|" + number(stderr_value) + "|\n";
      first = false;
    }
  }
  return out;
}

}  // namespace edgerazor::eval
