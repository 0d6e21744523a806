// A downstream task in lm-evaluation-harness's own YAML format (lm_eval 0.4, TaskConfig), for
// local data: `dataset_path: json` with `dataset_kwargs.data_files`, the split keys, the
// doc_to_text / doc_to_target / doc_to_choice templates, delimiters, few-shot settings,
// output_type, generation_kwargs, filter_list and metric_list, and `include:` of a base file.
// A key we do not implement (Python functions such as !function / process_docs, other
// dataset builders, sampling...) is a ConfigError naming the file and the key, never ignored.
// Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgerazor/text/chat_template_jinja.h"

namespace edgerazor::eval {

using text::jinja::Value;

struct MetricConfig {
  std::string name;         // acc, acc_norm, acc_bytes, acc_mutual_info, exact_match, perplexity,
                            // word_perplexity, byte_perplexity, bits_per_byte
  std::string aggregation;  // mean, perplexity, weighted_perplexity, bits_per_byte, median
  bool higher_is_better = true;
  // exact_match options (lm_eval.api.metrics.exact_match_hf_evaluate)
  std::vector<std::string> regexes_to_ignore;
  bool ignore_case = false, ignore_punctuation = false, ignore_numbers = false;
};

struct FilterStep {
  std::string function;  // regex, take_first, lowercase, uppercase, remove_whitespace, strip? (see .cpp)
  std::string regex_pattern = "#### (\\-?[0-9\\.\\,]+)";
  int64_t group_select = 0;
  std::string fallback = "[invalid]";
};

struct FilterConfig {
  std::string name;  // the suffix of the metric keys: "acc,none", "exact_match,strict-match"
  std::vector<FilterStep> steps;
};

struct GenerationConfig {
  std::vector<std::string> until;
  int64_t max_gen_toks = 256;
};

struct TaskConfig {
  std::string file;  // the YAML this came from
  std::string task, task_alias;
  std::string output_type = "generate_until";  // multiple_choice, loglikelihood, loglikelihood_rolling
  // split name -> data files (JSON Lines, or a JSON array of objects)
  std::map<std::string, std::vector<std::string>> data_files;
  std::optional<std::string> training_split, validation_split, test_split, fewshot_split;
  // Each a feature name, a Jinja template, an int or (doc_to_choice) a list/dict; undefined = absent.
  Value doc_to_text, doc_to_target, doc_to_choice;
  std::string description, target_delimiter = " ", fewshot_delimiter = "\n\n";
  std::optional<std::string> gen_prefix;
  int64_t num_fewshot = 0;
  bool num_fewshot_set_to_zero = false;  // lm-eval never overrides an explicit `num_fewshot: 0`
  std::string fewshot_sampler = "default";  // or first_n
  std::optional<GenerationConfig> generation;  // generate_until only
  std::vector<MetricConfig> metrics;
  std::vector<FilterConfig> filters;  // default: one "none" = take_first
  nlohmann::ordered_json version;             // metadata.version, else "Yaml" (lm-eval's)
  nlohmann::ordered_json dumped;              // the config as lm-eval writes it under "configs"
};

// Reads and checks one task file (ConfigError naming file and key on anything wrong).
TaskConfig load_task_config(const std::string& yaml_file);

// The documents of one task: features (column names, in file order) and each split's rows.
struct TaskData {
  std::vector<std::string> features;
  std::map<std::string, std::vector<Value>> splits;  // each row an object with every feature
};
// Loads the data files of the splits the task uses; FormatError naming the file and line.
TaskData load_task_data(const TaskConfig& task);

}  // namespace edgerazor::eval
