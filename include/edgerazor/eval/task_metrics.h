// Filters, per-document metrics and aggregations of lm-evaluation-harness 0.4.13, with the same
// definitions: the regex / take_first / lowercase / uppercase / remove_whitespace filters,
// exact_match with regexes_to_ignore / ignore_case / ignore_punctuation / ignore_numbers,
// mean / median / perplexity / weighted_perplexity / bits_per_byte, and the standard errors
// (mean: sample stddev / sqrt(n); median and perplexity: lm-eval's seeded bootstrap;
// weighted aggregations: none, "N/A"). Torch-free.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/eval/task_config.h"

namespace edgerazor::eval {

// One filter pipeline over a document's responses; the result is its first response after
// every step (take_first is implied at the end, as generate_until scores one response).
std::string apply_filter(const FilterConfig& filter, const std::vector<std::string>& responses);

// exact_match of one prediction against one reference under the metric's options.
bool exact_match(const MetricConfig& metric, const std::string& prediction, const std::string& reference);

// re.split(r"\s+", text) length and UTF-8 byte count, the weights of the rolling perplexities.
int64_t count_words(const std::string& text);

// A metric's per-document items: a plain value, or (loglikelihood, weight) for the weighted ones.
struct MetricItems {
  std::vector<double> values;
  std::vector<std::pair<double, double>> weighted;
  size_t size() const { return values.empty() ? weighted.size() : values.size(); }
};

double aggregate(const std::string& aggregation, const MetricItems& items);
// nullopt = "N/A" (no closed form, or a single item). bootstrap_iters: lm-eval's default 100000.
std::optional<double> standard_error(const std::string& aggregation, const MetricItems& items, int64_t bootstrap_iters = 100000);

}  // namespace edgerazor::eval
