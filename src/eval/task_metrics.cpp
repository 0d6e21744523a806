// lm_eval/filters/*.py and lm_eval/api/metrics.py, in C++.
#include "edgerazor/eval/task_metrics.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "edgerazor/eval/python_random.h"
#include "edgerazor/text/python_regex.h"
#include "edgerazor/text/python_str.h"

namespace edgerazor::eval {
namespace {

std::string strip(const std::string& s) { return text::python_strip(s); }

std::string change_case(const std::string& s, bool upper) { return upper ? text::python_upper(s) : text::python_lower(s); }

std::string remove_chars(const std::string& s, const std::string& chars) {
  std::string out;
  for (char c : s)
    if (chars.find(c) == std::string::npos) out += c;
  return out;
}

// RegexFilter.apply for one response.
std::string regex_extract(const FilterStep& step, const std::string& response) {
  const text::PythonRegex regex(step.regex_pattern);
  const auto matches = regex.findall(response);
  if (matches.empty()) return step.fallback;
  const int64_t n = static_cast<int64_t>(matches.size());
  int64_t k = step.group_select < 0 ? step.group_select + n : step.group_select;
  if (k < 0 || k >= n)
    throw std::invalid_argument("regex filter: group_select " + std::to_string(step.group_select) + " is outside the " + std::to_string(n) + " matches");
  const auto& m = matches[static_cast<size_t>(k)];
  std::string picked;
  if (m.size() == 1) {
    picked = m[0];
  } else {  // a tuple of groups: the first non-empty one
    auto it = std::find_if(m.begin(), m.end(), [](const std::string& g) { return !g.empty(); });
    if (it == m.end()) return strip(step.fallback);  // Python strips the fallback in this case
    picked = *it;
  }
  return strip(picked);
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double sample_stddev(const std::vector<double>& v) {
  const double mu = mean(v);
  double s = 0;
  for (double x : v) s += (x - mu) * (x - mu);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

}  // namespace

std::string apply_filter(const FilterConfig& filter, const std::vector<std::string>& responses) {
  std::vector<std::string> r = responses;
  for (const auto& step : filter.steps) {
    if (step.function == "take_first") {
      if (!r.empty()) r.resize(1);
    } else {
      for (auto& s : r) {
        if (step.function == "regex") s = regex_extract(step, s);
        else if (step.function == "lowercase") s = change_case(s, false);
        else if (step.function == "uppercase") s = change_case(s, true);
        else if (step.function == "remove_whitespace") s = strip(s);
        else throw std::invalid_argument("unknown filter function " + step.function);
      }
    }
  }
  return r.empty() ? std::string() : r[0];
}

bool exact_match(const MetricConfig& metric, const std::string& prediction, const std::string& reference) {
  std::string p = prediction, r = reference;
  for (const auto& pattern : metric.regexes_to_ignore) {
    const text::PythonRegex regex(pattern);
    p = regex.sub("", p);
    r = regex.sub("", r);
  }
  if (metric.ignore_case) p = change_case(p, false), r = change_case(r, false);
  if (metric.ignore_punctuation) {
    static const std::string punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";  // string.punctuation
    p = remove_chars(p, punctuation), r = remove_chars(r, punctuation);
  }
  if (metric.ignore_numbers) p = remove_chars(p, "0123456789"), r = remove_chars(r, "0123456789");
  return p == r;
}

int64_t count_words(const std::string& text) {
  static const text::PythonRegex whitespace("\\s+");
  return static_cast<int64_t>(whitespace.findall(text).size()) + 1;
}

double aggregate(const std::string& aggregation, const MetricItems& items) {
  if (items.size() == 0) throw std::invalid_argument("no items to aggregate");
  if (aggregation == "mean") return mean(items.values);
  if (aggregation == "median") {
    std::vector<double> v = items.values;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  if (aggregation == "perplexity") return std::exp(-mean(items.values));
  double a = 0, b = 0;
  for (const auto& [x, w] : items.weighted) a += x, b += w;
  if (aggregation == "weighted_perplexity") return std::exp(-a / b);
  if (aggregation == "bits_per_byte") return -a / b / std::log(2.0);
  throw std::invalid_argument("unknown aggregation " + aggregation);
}

std::optional<double> standard_error(const std::string& aggregation, const MetricItems& items, int64_t bootstrap_iters) {
  if (items.size() < 2 || bootstrap_iters <= 0) return std::nullopt;
  if (aggregation == "mean") return sample_stddev(items.values) / std::sqrt(static_cast<double>(items.values.size()));
  if (aggregation != "median" && aggregation != "perplexity") return std::nullopt;
  // bootstrap_stderr: chunks of 1000 resamples, chunk i drawn with random.Random(i).
  const int64_t chunk = std::min<int64_t>(1000, bootstrap_iters);
  std::vector<double> stats;
  MetricItems resample;
  resample.values.resize(items.values.size());
  for (int64_t i = 0; i < bootstrap_iters / chunk; ++i) {
    PythonRandom rnd(static_cast<uint64_t>(i));
    for (int64_t k = 0; k < chunk; ++k) {
      const auto picks = rnd.choices(items.values.size(), items.values.size());
      for (size_t j = 0; j < picks.size(); ++j) resample.values[j] = items.values[picks[j]];
      stats.push_back(aggregate(aggregation, resample));
    }
  }
  return sample_stddev(stats);
}

}  // namespace edgerazor::eval
