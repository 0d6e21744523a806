// lm-evaluation-harness task YAML -> TaskConfig, and the task's local JSON data.
#include "edgerazor/eval/task_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"
#include "edgerazor/core/json_records.h"
#include "edgerazor/text/python_regex.h"
#include "edgerazor/text/unicode.h"

namespace edgerazor::eval {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// Where each top-level key was written, for errors.
struct KeyLocation {
  std::string file;
  int line = 0;
};

[[noreturn]] void fail(const KeyLocation& at, const std::string& key, const std::string& message) {
  throw ConfigError(at.file, at.line, 0, key, message);
}

// PyYAML's resolution of a plain scalar: null, bool, int, float, else a string.
json scalar_to_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() != "?") return s;  // quoted: always a string
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  for (const char* t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}) if (s == t) return true;
  for (const char* f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}) if (s == f) return false;
  try {
    size_t used = 0;
    const long long v = std::stoll(s, &used, 10);
    if (used == s.size()) return static_cast<int64_t>(v);
  } catch (const std::exception&) {
  }
  if (s.find_first_of("0123456789") != std::string::npos && s.find_first_not_of("0123456789+-.eE_") == std::string::npos &&
      s.find('.') != std::string::npos) {
    try {
      size_t used = 0;
      const double v = std::stod(s, &used);
      if (used == s.size()) return v;
    } catch (const std::exception&) {
    }
  }
  return s;
}

json yaml_to_json(const YAML::Node& node, const std::string& file, const std::string& key) {
  if (node.Tag() == "!function")
    throw ConfigError(file, node.Mark().line + 1, node.Mark().column + 1, key,
                      "!function (Python code) is not supported: write the field as a Jinja template or a feature name");
  switch (node.Type()) {
    case YAML::NodeType::Null: return nullptr;
    case YAML::NodeType::Scalar:
      // Python reads task files as UTF-8 and stops on anything else; so do we (JSON needs it too).
      if (!text::is_valid_utf8(node.Scalar()))
        throw ConfigError(file, node.Mark().line + 1, node.Mark().column + 1, key, "is not valid UTF-8");
      return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (size_t i = 0; i < node.size(); ++i) out.push_back(yaml_to_json(node[i], file, key + "[" + std::to_string(i) + "]"));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar())
          throw ConfigError(file, kv.first.Mark().line + 1, kv.first.Mark().column + 1, key, "a mapping key must be a scalar");
        const std::string k = kv.first.Scalar();
        if (!text::is_valid_utf8(k)) throw ConfigError(file, kv.first.Mark().line + 1, kv.first.Mark().column + 1, key, "a key is not valid UTF-8");
        out[k] = yaml_to_json(kv.second, file, key.empty() ? k : key + "." + k);
      }
      return out;
    }
    default: return nullptr;
  }
}

// Loads a task file with its `include:` chain (each included file first, then this one's keys
// on top, as lm_eval.utils.load_yaml_config does).
json load_yaml_with_includes(const std::string& file, std::map<std::string, KeyLocation>& where, int depth) {
  if (depth > 16) throw ConfigError(file, 0, 0, "include", "includes nest more than 16 deep (a cycle?)");
  files::require_regular_file(file, "the task file");
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    throw ConfigError(file, e.mark.line + 1, e.mark.column + 1, "", e.msg);
  }
  if (!root.IsMap()) throw ConfigError(file, 0, 0, "", "a task file must be a YAML mapping of keys");
  json self = yaml_to_json(root, file, "");
  std::map<std::string, KeyLocation> self_where;
  for (const auto& kv : root) self_where[kv.first.Scalar()] = {file, kv.first.Mark().line + 1};
  json merged = json::object();
  if (self.contains("include")) {
    json includes = self["include"];
    if (includes.is_string()) includes = json::array({includes});
    if (!includes.is_array()) fail(self_where["include"], "include", "must be a file name or a list of them");
    for (const auto& inc : includes) {
      if (!inc.is_string()) fail(self_where["include"], "include", "must be a file name or a list of them");
      fs::path path = inc.get<std::string>();
      if (path.is_relative()) path = fs::path(file).parent_path() / path;
      const json base = load_yaml_with_includes(path.string(), where, depth + 1);
      for (const auto& [k, v] : base.items()) merged[k] = v;
    }
    self.erase("include");
  }
  for (const auto& [k, v] : self.items()) {
    merged[k] = v;
    where[k] = self_where[k];
  }
  return merged;
}

Value json_to_value(const json& j) { return Value::from_json(j); }

std::string require_string(const json& j, const KeyLocation& at, const std::string& key) {
  if (!j.is_string()) fail(at, key, "must be a string, not " + std::string(j.type_name()));
  return j.get<std::string>();
}

int64_t require_int(const json& j, const KeyLocation& at, const std::string& key) {
  if (!j.is_number_integer()) fail(at, key, "must be an integer, not " + std::string(j.type_name()));
  return j.get<int64_t>();
}

bool require_bool(const json& j, const KeyLocation& at, const std::string& key) {
  if (!j.is_boolean()) fail(at, key, "must be true or false");
  return j.get<bool>();
}

std::vector<std::string> string_list(const json& j, const KeyLocation& at, const std::string& key) {
  std::vector<std::string> out;
  if (j.is_string()) return {j.get<std::string>()};
  if (!j.is_array()) fail(at, key, "must be a string or a list of strings");
  for (const auto& s : j) {
    if (!s.is_string()) fail(at, key, "must be a string or a list of strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

// A Python regex that PCRE2 cannot compile fails when the file is read, not mid-evaluation.
void check_regex(const std::string& pattern, const KeyLocation& at, const std::string& key) {
  try {
    text::PythonRegex{pattern};
  } catch (const std::invalid_argument& e) {
    fail(at, key, e.what());
  }
}

struct MetricDefaults {
  const char* name;
  const char* aggregation;
  bool higher_is_better;
  std::set<std::string> output_types;
};
const std::vector<MetricDefaults>& metric_table() {
  static const std::vector<MetricDefaults> table = {
      {"acc", "mean", true, {"multiple_choice", "loglikelihood"}},
      {"acc_norm", "mean", true, {"multiple_choice"}},
      {"acc_bytes", "mean", true, {"multiple_choice"}},
      {"acc_mutual_info", "mean", true, {"multiple_choice"}},
      {"exact_match", "mean", true, {"multiple_choice", "generate_until"}},
      {"perplexity", "perplexity", false, {"loglikelihood"}},
      {"word_perplexity", "weighted_perplexity", false, {"loglikelihood_rolling"}},
      {"byte_perplexity", "weighted_perplexity", false, {"loglikelihood_rolling"}},
      {"bits_per_byte", "bits_per_byte", false, {"loglikelihood_rolling"}},
  };
  return table;
}

const MetricDefaults* find_metric(const std::string& name) {
  for (const auto& m : metric_table())
    if (name == m.name) return &m;
  return nullptr;
}

MetricConfig default_metric(const MetricDefaults& m) {
  MetricConfig c;
  c.name = m.name;
  c.aggregation = m.aggregation;
  c.higher_is_better = m.higher_is_better;
  return c;
}

void parse_metrics(TaskConfig& t, const json& list, const KeyLocation& at) {
  if (!list.is_array() || list.empty()) fail(at, "metric_list", "must be a non-empty list of {metric: NAME, ...}");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string key = "metric_list[" + std::to_string(i) + "]";
    const json& m = list[i];
    if (!m.is_object() || !m.contains("metric")) fail(at, key, "each entry needs a 'metric' key");
    const std::string name = require_string(m["metric"], at, key + ".metric");
    const MetricDefaults* known = find_metric(name);
    if (!known) {
      std::string names;
      for (const auto& d : metric_table()) names += std::string(names.empty() ? "" : ", ") + d.name;
      fail(at, key + ".metric", "'" + name + "' is not supported (supported: " + names + ")");
    }
    if (!known->output_types.count(t.output_type))
      fail(at, key + ".metric", "'" + name + "' does not apply to output_type " + t.output_type);
    MetricConfig c = default_metric(*known);
    for (const auto& [k, v] : m.items()) {
      const std::string sub = key + "." + k;
      if (k == "metric") continue;
      if (k == "aggregation") {
        c.aggregation = require_string(v, at, sub);
        static const std::set<std::string> aggregations = {"mean", "median", "perplexity", "weighted_perplexity", "bits_per_byte"};
        if (!aggregations.count(c.aggregation)) fail(at, sub, "'" + c.aggregation + "' is not supported (mean, median, perplexity, weighted_perplexity, bits_per_byte)");
        // Rolling metrics are (loglikelihood, weight) pairs; the others one number per document.
        const bool weighted_metric = t.output_type == "loglikelihood_rolling";
        const bool weighted_aggregation = c.aggregation == "weighted_perplexity" || c.aggregation == "bits_per_byte";
        if (weighted_metric != weighted_aggregation)
          fail(at, sub, "'" + c.aggregation + "' does not fit metric " + name +
                            (weighted_metric ? " (its items are (loglikelihood, weight) pairs: weighted_perplexity or bits_per_byte)"
                                             : " (one number per document: mean, median or perplexity)"));
      } else if (k == "higher_is_better") {
        c.higher_is_better = require_bool(v, at, sub);
      } else if (name == "exact_match" && k == "ignore_case") {
        c.ignore_case = require_bool(v, at, sub);
      } else if (name == "exact_match" && k == "ignore_punctuation") {
        c.ignore_punctuation = require_bool(v, at, sub);
      } else if (name == "exact_match" && k == "ignore_numbers") {
        c.ignore_numbers = require_bool(v, at, sub);
      } else if (name == "exact_match" && k == "regexes_to_ignore") {
        c.regexes_to_ignore = string_list(v, at, sub);
        for (const auto& r : c.regexes_to_ignore) check_regex(r, at, sub);
      } else {
        fail(at, sub, "is not supported for metric " + name);
      }
    }
    t.metrics.push_back(c);
  }
}

void parse_filters(TaskConfig& t, const json& list, const KeyLocation& at) {
  if (!list.is_array() || list.empty()) fail(at, "filter_list", "must be a list of {name: NAME, filter: [...]}");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string key = "filter_list[" + std::to_string(i) + "]";
    const json& f = list[i];
    if (!f.is_object() || !f.contains("name") || !f.contains("filter")) fail(at, key, "needs 'name' and 'filter'");
    for (const auto& [k, v] : f.items())
      if (k != "name" && k != "filter") fail(at, key + "." + k, "is not a filter key (name, filter)");
    FilterConfig fc;
    fc.name = require_string(f["name"], at, key + ".name");
    const json& steps = f["filter"];
    if (!steps.is_array() || steps.empty()) fail(at, key + ".filter", "must be a non-empty list of {function: ...}");
    for (size_t s = 0; s < steps.size(); ++s) {
      const std::string skey = key + ".filter[" + std::to_string(s) + "]";
      if (!steps[s].is_object() || !steps[s].contains("function")) fail(at, skey, "needs a 'function'");
      FilterStep step;
      step.function = require_string(steps[s]["function"], at, skey + ".function");
      static const std::set<std::string> functions = {"regex", "take_first", "lowercase", "uppercase", "remove_whitespace"};
      if (!functions.count(step.function))
        fail(at, skey + ".function", "'" + step.function + "' is not supported (regex, take_first, lowercase, uppercase, remove_whitespace)");
      for (const auto& [k, v] : steps[s].items()) {
        if (k == "function") continue;
        if (step.function != "regex") fail(at, skey + "." + k, "is not an argument of " + step.function);
        if (k == "regex_pattern") step.regex_pattern = require_string(v, at, skey + "." + k);
        else if (k == "group_select") step.group_select = require_int(v, at, skey + "." + k);
        else if (k == "fallback") step.fallback = require_string(v, at, skey + "." + k);
        else fail(at, skey + "." + k, "is not an argument of regex (regex_pattern, group_select, fallback)");
      }
      if (step.function == "regex") check_regex(step.regex_pattern, at, skey + ".regex_pattern");
      fc.steps.push_back(step);
    }
    t.filters.push_back(fc);
  }
}

void parse_generation(TaskConfig& t, const json& kwargs, const KeyLocation& at) {
  GenerationConfig g;
  g.until = {t.fewshot_delimiter};  // lm-eval's default when `until` is missing
  if (!kwargs.is_null()) {
    if (!kwargs.is_object()) fail(at, "generation_kwargs", "must be a mapping");
    for (const auto& [k, v] : kwargs.items()) {
      const std::string key = "generation_kwargs." + k;
      if (k == "until") g.until = string_list(v, at, key);
      else if (k == "max_gen_toks" || k == "max_new_tokens") {
        g.max_gen_toks = require_int(v, at, key);
        if (g.max_gen_toks < 1) fail(at, key, "must be at least 1");
      } else if (k == "do_sample") {
        if (require_bool(v, at, key)) fail(at, key, "sampling is not supported: evaluation decodes greedily (do_sample: false)");
      } else if (k == "temperature") {
        if (!v.is_number() || v.get<double>() != 0.0) fail(at, key, "only 0 (greedy) is supported");
      } else {
        fail(at, key, "is not supported (until, max_gen_toks, do_sample: false, temperature: 0)");
      }
    }
  }
  t.generation = g;
}

std::optional<std::string> optional_string(const json& j, const KeyLocation& at, const std::string& key) {
  if (j.is_null()) return std::nullopt;
  return require_string(j, at, key);
}

}  // namespace

TaskConfig load_task_config(const std::string& yaml_file) {
  std::map<std::string, KeyLocation> where;
  const json raw = load_yaml_with_includes(yaml_file, where, 0);
  const auto at = [&](const std::string& key) {
    auto it = where.find(key);
    return it != where.end() ? it->second : KeyLocation{yaml_file, 0};
  };
  TaskConfig t;
  t.file = yaml_file;
  // Keys lm-eval has that are fine to carry (no effect on scoring here).
  static const std::set<std::string> inert = {"tag", "group", "should_decontaminate", "doc_to_decontamination_query"};
  static const std::set<std::string> known = {"task", "task_alias", "dataset_path", "dataset_name", "dataset_kwargs",
                                              "training_split", "validation_split", "test_split", "fewshot_split",
                                              "doc_to_text", "doc_to_target", "doc_to_choice", "description",
                                              "target_delimiter", "fewshot_delimiter", "fewshot_config", "num_fewshot",
                                              "metric_list", "output_type", "generation_kwargs", "repeats",
                                              "filter_list", "gen_prefix", "metadata", "unsafe_code"};
  for (const auto& [k, v] : raw.items()) {
    if (known.count(k) || inert.count(k)) continue;
    if (k == "process_docs" || k == "process_results" || k == "custom_dataset")
      fail(at(k), k, "Python functions are not supported: prepare the data file instead");
    if (k == "use_prompt") fail(at(k), k, "promptsource prompts are not supported: write doc_to_text/doc_to_target");
    if (k == "doc_to_image" || k == "doc_to_audio") fail(at(k), k, "multimodal tasks are not supported");
    fail(at(k), k, "is not a task key this evaluator supports");
  }
  if (raw.contains("should_decontaminate") && raw["should_decontaminate"] == true)
    fail(at("should_decontaminate"), "should_decontaminate", "decontamination is not supported");
  if (raw.contains("unsafe_code") && raw["unsafe_code"] != false) fail(at("unsafe_code"), "unsafe_code", "code execution tasks are not supported");
  if (!raw.contains("task")) fail({yaml_file, 0}, "task", "is required (the task's name)");
  t.task = require_string(raw["task"], at("task"), "task");
  if (raw.contains("task_alias")) t.task_alias = require_string(raw["task_alias"], at("task_alias"), "task_alias");
  if (raw.contains("output_type")) t.output_type = require_string(raw["output_type"], at("output_type"), "output_type");
  static const std::set<std::string> output_types = {"multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until"};
  if (!output_types.count(t.output_type))
    fail(at("output_type"), "output_type", "'" + t.output_type + "' is not one of multiple_choice, loglikelihood, loglikelihood_rolling, generate_until");

  // Data: local JSON through the `json` builder.
  if (!raw.contains("dataset_path")) fail({yaml_file, 0}, "dataset_path", "is required (dataset_path: json, with dataset_kwargs.data_files)");
  const std::string path = require_string(raw["dataset_path"], at("dataset_path"), "dataset_path");
  if (path != "json")
    fail(at("dataset_path"), "dataset_path", "'" + path + "': only local data is supported (dataset_path: json with dataset_kwargs.data_files)");
  if (raw.contains("dataset_name") && !raw["dataset_name"].is_null()) fail(at("dataset_name"), "dataset_name", "is not used by the json builder: remove it");
  const json kwargs = raw.value("dataset_kwargs", json());
  if (!kwargs.is_object() || !kwargs.contains("data_files")) fail(at("dataset_kwargs"), "dataset_kwargs.data_files", "is required");
  for (const auto& [k, v] : kwargs.items())
    if (k != "data_files") fail(at("dataset_kwargs"), "dataset_kwargs." + k, "is not supported (only data_files)");
  const json& files = kwargs["data_files"];
  const fs::path yaml_dir = fs::path(yaml_file).parent_path();
  const auto resolve = [&](const std::string& f) {
    // As datasets does: relative to the working folder; else beside the task file.
    std::error_code ec;  // a name the file system refuses (too long...) is reported when it is read
    if (fs::path(f).is_absolute() || fs::exists(f, ec)) return f;
    const fs::path beside = yaml_dir / f;
    return fs::exists(beside, ec) ? beside.string() : f;
  };
  if (files.is_object()) {
    for (const auto& [split, list] : files.items())
      for (const auto& f : string_list(list, at("dataset_kwargs"), "dataset_kwargs.data_files." + split)) t.data_files[split].push_back(resolve(f));
  } else {
    for (const auto& f : string_list(files, at("dataset_kwargs"), "dataset_kwargs.data_files")) t.data_files["train"].push_back(resolve(f));
  }
  const auto split_key = [&](const char* key) -> std::optional<std::string> {
    if (!raw.contains(key)) return std::nullopt;
    auto s = optional_string(raw[key], at(key), key);
    if (s && !t.data_files.count(*s)) fail(at(key), key, "split '" + *s + "' is not in dataset_kwargs.data_files");
    return s;
  };
  t.training_split = split_key("training_split");
  t.validation_split = split_key("validation_split");
  t.test_split = split_key("test_split");
  t.fewshot_split = split_key("fewshot_split");
  if (!t.test_split && !t.validation_split) fail({yaml_file, 0}, "test_split", "give test_split or validation_split (the documents to evaluate)");

  // Prompt fields.
  const auto field = [&](const char* key) {
    if (!raw.contains(key) || raw[key].is_null()) return Value();
    const json& v = raw[key];
    if (!v.is_string() && !v.is_number_integer() && !(std::string(key) == "doc_to_choice" && (v.is_array() || v.is_object())) &&
        !(std::string(key) == "doc_to_target" && v.is_array()))
      fail(at(key), key, "must be a feature name, a Jinja template or an index");
    return json_to_value(v);
  };
  t.doc_to_text = field("doc_to_text");
  t.doc_to_target = field("doc_to_target");
  t.doc_to_choice = field("doc_to_choice");
  if (t.doc_to_text.is_undefined() && t.output_type != "loglikelihood_rolling") fail({yaml_file, 0}, "doc_to_text", "is required");
  if (t.doc_to_target.is_undefined()) fail({yaml_file, 0}, "doc_to_target", "is required");
  if (t.output_type == "multiple_choice" && t.doc_to_choice.is_undefined()) fail({yaml_file, 0}, "doc_to_choice", "is required for multiple_choice");
  for (const auto& [key, target] : {std::pair{"description", &t.description}, std::pair{"target_delimiter", &t.target_delimiter},
                                     std::pair{"fewshot_delimiter", &t.fewshot_delimiter}})
    if (raw.contains(key)) *target = raw[key].is_null() ? "" : require_string(raw[key], at(key), key);
  if (raw.contains("gen_prefix")) t.gen_prefix = optional_string(raw["gen_prefix"], at("gen_prefix"), "gen_prefix");
  if (raw.contains("num_fewshot") && !raw["num_fewshot"].is_null()) {
    t.num_fewshot = require_int(raw["num_fewshot"], at("num_fewshot"), "num_fewshot");
    if (t.num_fewshot < 0) fail(at("num_fewshot"), "num_fewshot", "must be >= 0");
    t.num_fewshot_set_to_zero = t.num_fewshot == 0;
  }
  if (raw.contains("fewshot_config") && !raw["fewshot_config"].is_null()) {
    const json& fc = raw["fewshot_config"];
    if (!fc.is_object()) fail(at("fewshot_config"), "fewshot_config", "must be a mapping");
    for (const auto& [k, v] : fc.items()) {
      if (k == "sampler") {
        t.fewshot_sampler = require_string(v, at("fewshot_config"), "fewshot_config.sampler");
        if (t.fewshot_sampler != "default" && t.fewshot_sampler != "first_n")
          fail(at("fewshot_config"), "fewshot_config.sampler", "'" + t.fewshot_sampler + "' is not supported (default, first_n)");
      } else if (k == "split") {
        t.fewshot_split = optional_string(v, at("fewshot_config"), "fewshot_config.split");
        if (t.fewshot_split && !t.data_files.count(*t.fewshot_split))
          fail(at("fewshot_config"), "fewshot_config.split", "split '" + *t.fewshot_split + "' is not in dataset_kwargs.data_files");
      } else {
        fail(at("fewshot_config"), "fewshot_config." + k, "is not supported (sampler, split)");
      }
    }
  }
  if (t.num_fewshot > 0 && !t.fewshot_split && !t.training_split && !t.validation_split && !t.test_split)
    fail(at("num_fewshot"), "num_fewshot", "needs a split to draw examples from");
  if (raw.contains("repeats") && require_int(raw["repeats"], at("repeats"), "repeats") != 1)
    fail(at("repeats"), "repeats", "only 1 is supported (decoding is greedy)");

  if (t.output_type == "generate_until") parse_generation(t, raw.value("generation_kwargs", json()), at("generation_kwargs"));
  else if (raw.contains("generation_kwargs") && !raw["generation_kwargs"].is_null())
    fail(at("generation_kwargs"), "generation_kwargs", "applies to output_type generate_until only");

  if (raw.contains("metric_list") && !raw["metric_list"].is_null()) {
    parse_metrics(t, raw["metric_list"], at("metric_list"));
  } else {
    static const std::map<std::string, std::vector<std::string>> defaults = {
        {"loglikelihood", {"perplexity", "acc"}},
        {"loglikelihood_rolling", {"word_perplexity", "byte_perplexity", "bits_per_byte"}},
        {"multiple_choice", {"acc", "acc_norm"}},
        {"generate_until", {"exact_match"}}};
    for (const auto& name : defaults.at(t.output_type)) t.metrics.push_back(default_metric(*find_metric(name)));
  }
  if (raw.contains("filter_list") && !raw["filter_list"].is_null()) {
    if (t.output_type != "generate_until") fail(at("filter_list"), "filter_list", "applies to output_type generate_until only");
    parse_filters(t, raw["filter_list"], at("filter_list"));
  } else {
    t.filters.push_back({"none", {FilterStep{"take_first"}}});
  }
  t.version = "Yaml";
  if (raw.contains("metadata")) {
    if (!raw["metadata"].is_object()) fail(at("metadata"), "metadata", "must be a mapping");
    if (raw["metadata"].contains("version")) t.version = raw["metadata"]["version"];
  }

  // What lm-eval writes under "configs" (TaskConfig.to_dict(): null fields left out).
  json d = json::object();
  for (const char* key : {"task", "task_alias", "tag", "dataset_path", "dataset_kwargs", "training_split", "validation_split",
                          "test_split", "fewshot_split", "doc_to_text", "doc_to_target", "doc_to_choice"})
    if (raw.contains(key) && !raw[key].is_null()) d[key] = raw[key];
  d["description"] = t.description;
  d["target_delimiter"] = t.target_delimiter;
  d["fewshot_delimiter"] = t.fewshot_delimiter;
  if (t.num_fewshot > 0 || raw.contains("num_fewshot")) d["num_fewshot"] = t.num_fewshot;
  json metrics = json::array();
  for (const auto& m : t.metrics) {
    json e = {{"metric", m.name}, {"aggregation", m.aggregation}, {"higher_is_better", m.higher_is_better}};
    if (m.ignore_case) e["ignore_case"] = true;
    if (m.ignore_punctuation) e["ignore_punctuation"] = true;
    if (m.ignore_numbers) e["ignore_numbers"] = true;
    if (!m.regexes_to_ignore.empty()) e["regexes_to_ignore"] = m.regexes_to_ignore;
    metrics.push_back(e);
  }
  d["metric_list"] = metrics;
  d["output_type"] = t.output_type;
  if (t.generation) {  // as written, with lm-eval's defaults where keys are missing
    json g = raw.contains("generation_kwargs") && raw["generation_kwargs"].is_object() ? raw["generation_kwargs"] : json::object();
    if (!g.contains("until")) g["until"] = t.generation->until;
    if (!raw.contains("generation_kwargs") || raw["generation_kwargs"].is_null()) g = {{"temperature", 0.0}, {"do_sample", false}, {"max_gen_toks", 256}, {"until", t.generation->until}};
    d["generation_kwargs"] = g;
  }
  d["repeats"] = 1;
  if (raw.contains("filter_list")) d["filter_list"] = raw["filter_list"];
  if (t.gen_prefix) d["gen_prefix"] = *t.gen_prefix;
  d["should_decontaminate"] = false;
  if (raw.contains("metadata")) d["metadata"] = raw["metadata"];
  t.dumped = d;
  return t;
}

TaskData load_task_data(const TaskConfig& task) {
  std::set<std::string> used;
  for (const auto& s : {task.training_split, task.validation_split, task.test_split, task.fewshot_split})
    if (s) used.insert(*s);
  TaskData data;
  std::set<std::string> feature_set;
  for (const auto& split : used) {
    auto& rows = data.splits[split];
    for (const auto& file : task.data_files.at(split)) {
      files::require_regular_file(file, "the data file of split '" + split + "' of " + task.file);
      std::ifstream in(file, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      // One parse per record, rejecting repeated keys as every reader of hand-written JSON does.
      const auto add = [&](const json& r, const std::string& what) {
        if (!r.is_object()) throw FormatError(file, what + ": not a JSON object");
        for (const auto& [k, v] : r.items())
          if (feature_set.insert(k).second) data.features.push_back(k);
        rows.push_back(Value::from_json(r));
      };
      const size_t first = text.find_first_not_of(" \t\r\n");
      if (first != std::string::npos && text[first] == '[') {
        json all;
        try {
          all = json_records::parse<json>(text);
        } catch (const std::exception& e) {  // nlohmann's errors and DuplicateKey
          throw FormatError(file, std::string("not JSON Lines or a JSON array: ") + e.what());
        }
        for (const auto& r : all) add(r, "document " + std::to_string(rows.size()));
      } else {
        std::istringstream lines(text);
        std::string line;
        for (int64_t number = 1; std::getline(lines, line); ++number) {
          if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
          json r;
          try {
            r = json_records::parse<json>(line);
          } catch (const std::exception& e) {
            throw FormatError(file, "line " + std::to_string(number) + ": not a JSON object: " + e.what());
          }
          add(r, "line " + std::to_string(number));
        }
      }
    }
    if (rows.empty()) throw FormatError(task.data_files.at(split).front(), "split '" + split + "' of task " + task.task + " (" + task.file + ") has no documents");
  }
  // Every row carries every feature (None where a file left it out), as a datasets table does.
  for (auto& [split, rows] : data.splits)
    for (auto& row : rows)
      for (const auto& f : data.features)
        if (row.get(f).is_undefined()) row.set(f, Value::none());
  return data;
}

}  // namespace edgerazor::eval
