// Greedy / nucleus decoding with the KV cache, and windowed perplexity.
#include "edgerazor/model/generation.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "edgerazor/core/error.h"
#include "edgerazor/runtime/runtime.h"

#include "edgerazor/model/perplexity.h"

namespace edgerazor::model {
namespace {

// splitmix64: small, seedable, identical on every platform.
double next_uniform(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
}

}  // namespace

namespace {

// The logits after the repetition penalty (float64, on the CPU). Copied only once, and only when
// the penalty writes into them (to() may return the caller's own tensor).
at::Tensor penalised_logits(const at::Tensor& logits, const GenerationOptions& o, const std::vector<int64_t>& context) {
  const bool penalise = o.repetition_penalty != 1.0 && !context.empty();
  at::Tensor row = logits.to(at::kCPU, at::kDouble, /*non_blocking=*/false, /*copy=*/penalise).contiguous();
  const int64_t V = row.size(0);
  if (penalise) {
    double* l = row.data_ptr<double>();
    std::vector<int64_t> seen(context);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int64_t id : seen)
      if (id >= 0 && id < V) l[id] = l[id] > 0 ? l[id] / o.repetition_penalty : l[id] * o.repetition_penalty;
  }
  return row;
}

// The tokens sampling may pick, most likely first, with their softmax probabilities (not
// renormalised): temperature, then the k most likely, then the smallest prefix of those whose
// renormalised mass reaches top_p (as transformers' TopK and TopP warpers).
void sampling_candidates(const at::Tensor& row, const GenerationOptions& o, std::vector<int64_t>& ids,
                         std::vector<double>& probs) {
  const at::Tensor softmax = at::softmax(row / o.temperature, 0);
  const double* p = softmax.data_ptr<double>();
  const int64_t V = softmax.size(0);
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  const size_t k = o.top_k > 0 ? static_cast<size_t>(std::min<int64_t>(o.top_k, V)) : order.size();
  const auto by_probability = [p](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); };
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), by_probability);
  double kept_mass = 1.0;
  if (k < order.size()) {
    kept_mass = 0.0;
    for (size_t i = 0; i < k; ++i) kept_mass += p[order[i]];
  }
  double mass = 0.0;
  size_t keep = 0;
  while (keep < k) {
    mass += p[order[keep++]];
    if (mass >= o.top_p * kept_mass) break;
  }
  ids.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep));
  probs.resize(keep);
  for (size_t i = 0; i < keep; ++i) probs[i] = p[ids[i]];
}

}  // namespace

TokenDistribution sampling_distribution(const at::Tensor& logits, const GenerationOptions& o,
                                        const std::vector<int64_t>& context) {
  const at::Tensor row = penalised_logits(logits, o, context);
  TokenDistribution d;
  if (o.greedy || o.temperature <= 0.0) {
    d.ids = {row.argmax().item<int64_t>()};
    d.probs = {1.0};
    return d;
  }
  sampling_candidates(row, o, d.ids, d.probs);
  double mass = 0.0;
  for (double q : d.probs) mass += q;
  for (double& q : d.probs) q /= mass;
  return d;
}

int64_t select_token(const at::Tensor& logits, const GenerationOptions& o, uint64_t& rng_state,
                     const std::vector<int64_t>& context) {
  const at::Tensor row = penalised_logits(logits, o, context);
  if (o.greedy || o.temperature <= 0.0 || o.top_k == 1) return row.argmax().item<int64_t>();
  std::vector<int64_t> ids;
  std::vector<double> probs;
  sampling_candidates(row, o, ids, probs);
  double mass = 0.0;
  for (double q : probs) mass += q;
  double r = next_uniform(rng_state) * mass;
  for (size_t i = 0; i < ids.size(); ++i) {
    r -= probs[i];
    if (r < 0) return ids[i];
  }
  return ids.back();
}

size_t find_stop_string(const std::string& text, const std::vector<std::string>& stops, size_t& length) {
  size_t best = std::string::npos;
  length = 0;
  for (const auto& stop : stops) {
    if (stop.empty()) continue;
    const size_t at = text.find(stop);
    if (at < best) {
      best = at;
      length = stop.size();
    }
  }
  return best;
}

std::vector<int64_t> generate(CausalLMImpl& model, const std::vector<int64_t>& prompt, const GenerationOptions& o,
                              const std::function<bool(int64_t)>& on_token) {
  if (prompt.empty()) throw std::invalid_argument("generate: the prompt is empty (give at least BOS)");
  std::function<bool(size_t, int64_t)> each;
  if (on_token) each = [&on_token](size_t, int64_t id) { return on_token(id); };
  return generate_batch(model, {prompt}, {o}, each).front();  // one row: no padding, no mask
}

std::vector<std::vector<int64_t>> generate_batch(CausalLMImpl& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 const std::vector<GenerationOptions>& options,
                                                 const std::function<bool(size_t, int64_t)>& on_token) {
  const size_t B = prompts.size();
  if (options.size() != B) throw std::invalid_argument("generate_batch: one GenerationOptions per prompt");
  std::vector<std::vector<int64_t>> out(B);
  if (B == 0) return out;
  int64_t width = 0, steps = 0;
  for (size_t b = 0; b < B; ++b) {
    if (prompts[b].empty()) throw std::invalid_argument("generate_batch: prompt " + std::to_string(b) + " is empty");
    const int64_t positions = model.config.max_position_embeddings;
    if (static_cast<int64_t>(prompts[b].size()) + options[b].max_new_tokens > positions)
      throw ConfigError("", 0, 0, "max_new_tokens",
                        "the prompt" + (B > 1 ? " " + std::to_string(b) : std::string()) + " (" +
                            std::to_string(prompts[b].size()) + " tokens) and " +
                            std::to_string(options[b].max_new_tokens) + " new tokens exceed the model's " +
                            std::to_string(positions) + " positions (max_position_embeddings); shorten the prompt or "
                            "lower --max-new-tokens to " + std::to_string(std::max<int64_t>(0, positions - int64_t(prompts[b].size()))));
    width = std::max<int64_t>(width, static_cast<int64_t>(prompts[b].size()));
    steps = std::max(steps, options[b].max_new_tokens);
  }
  at::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const auto device = model.lm_head->weight.device();
  // Left padding: every row's last prompt token sits in the last column.
  at::Tensor ids = at::zeros({static_cast<int64_t>(B), width}, at::kLong);
  at::Tensor mask = at::zeros({static_cast<int64_t>(B), width}, at::kLong);
  for (size_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size());
    ids[static_cast<int64_t>(b)].narrow(0, width - n, n).copy_(at::tensor(prompts[b], at::kLong));
    mask[static_cast<int64_t>(b)].narrow(0, width - n, n).fill_(1);
  }
  // Rows of one length need no mask (and take the unmasked attention path).
  const bool padded = std::any_of(prompts.begin(), prompts.end(),
                                  [width](const auto& p) { return static_cast<int64_t>(p.size()) != width; });
  KVCache cache;
  ForwardOptions fo;
  fo.cache = &cache;
  std::vector<std::vector<int64_t>> context(prompts);
  std::vector<uint64_t> rng(B);
  std::vector<bool> done(B, false);
  for (size_t b = 0; b < B; ++b) rng[b] = options[b].seed;
  at::Tensor input = ids.to(device);
  mask = mask.to(device);
  for (int64_t step = 0; step < steps; ++step) {
    runtime::adapt_threads();
    if (padded) fo.attention_mask = mask;
    const at::Tensor last = model.forward(input, fo).logits.select(1, -1);  // (B, V)
    std::vector<int64_t> next(B, 0);
    bool all_done = true;
    for (size_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const GenerationOptions& o = options[b];
      const int64_t id = select_token(last[static_cast<int64_t>(b)], o, rng[b], context[b]);
      next[b] = id;
      out[b].push_back(id);
      context[b].push_back(id);
      const bool stop_id = std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end();
      if ((on_token && !on_token(b, id)) || stop_id || static_cast<int64_t>(out[b].size()) >= o.max_new_tokens)
        done[b] = true;
      all_done = all_done && done[b];
    }
    if (all_done) break;
    input = at::tensor(next, at::kLong).view({static_cast<int64_t>(B), 1}).to(device);
    if (padded) mask = at::cat({mask, at::ones({static_cast<int64_t>(B), 1}, mask.options())}, 1);
  }
  if (was_training) model.train();
  return out;
}

PerplexityResult evaluate_perplexity(CausalLMImpl& model, const std::vector<int32_t>& tokens_in,
                                     const PerplexityOptions& o) {
  const int64_t prefix = o.bos_id ? 1 : 0;
  if (o.seq_len < 2) throw std::invalid_argument("perplexity: seq_len must be at least 2");
  if (o.seq_len > model.config.max_position_embeddings)
    throw ConfigError("", 0, 0, "seq_len",
                      std::to_string(o.seq_len) + " tokens per window is more than the model's " +
                          std::to_string(model.config.max_position_embeddings) + " positions (max_position_embeddings)");
  std::vector<int32_t> tokens = tokens_in;
  if (o.max_tokens > 0 && static_cast<int64_t>(tokens.size()) > o.max_tokens) tokens.resize(o.max_tokens);
  // Window w holds stream tokens [w*step, w*step + step) after the optional BOS. Without BOS the
  // first token of a window has no context and is not predicted.
  const int64_t step = o.seq_len - prefix;
  const int64_t n = static_cast<int64_t>(tokens.size());
  std::vector<std::pair<int64_t, int64_t>> windows;  // (begin, length) in the stream
  for (int64_t b = 0; b < n; b += step) {
    const int64_t len = std::min(step, n - b);
    if (len + prefix >= 2) windows.emplace_back(b, len);
  }
  if (windows.empty())  // a perplexity of 1 over no tokens would look like a perfect model
    throw ConfigError("", 0, 0, "", "nothing to evaluate: the text has " + std::to_string(n) +
                                        " tokens, and a perplexity needs at least one predicted token");
  at::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const auto device = model.lm_head->weight.device();
  double nll_sum = 0.0;
  int64_t predicted = 0, done = 0;
  for (size_t i = 0; i < windows.size();) {
    // A batch of windows of equal length.
    size_t j = i;
    while (j < windows.size() && static_cast<int64_t>(j - i) < std::max<int64_t>(1, o.batch_size) &&
           windows[j].second == windows[i].second)
      ++j;
    runtime::adapt_threads();
    const int64_t B = static_cast<int64_t>(j - i), T = windows[i].second + prefix;
    at::Tensor ids = at::empty({B, T}, at::kLong);
    auto acc = ids.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      if (prefix) acc[b][0] = *o.bos_id;
      for (int64_t t = 0; t < windows[i + b].second; ++t) acc[b][t + prefix] = tokens[windows[i + b].first + t];
    }
    ids = ids.to(device);
    const at::Tensor logits = model.forward(ids.narrow(1, 0, T - 1)).logits;    // (B, T-1, V)
    const at::Tensor logp = at::log_softmax(logits.to(at::kFloat), -1);        // (B, T-1, V)
    const at::Tensor target = ids.narrow(1, 1, T - 1).unsqueeze(-1);           // (B, T-1, 1)
    nll_sum -= logp.gather(-1, target).to(at::kDouble).sum().item<double>();
    predicted += B * (T - 1);
    for (size_t k = i; k < j; ++k) done += windows[k].second;
    if (o.progress) o.progress(done, n);
    i = j;
  }
  if (was_training) model.train();
  PerplexityResult r;
  r.tokens = predicted;
  r.windows = static_cast<int64_t>(windows.size());
  r.mean_nll = predicted > 0 ? nll_sum / static_cast<double>(predicted) : 0.0;
  r.perplexity = std::exp(r.mean_nll);
  return r;
}

}  // namespace edgerazor::model
