// Perplexity of a token stream: the stream is cut into windows, each window starts with BOS
// (when given) and every other position is predicted; the result is the mean negative
// log-likelihood per predicted token (nats) and exp of it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "edgerazor/model/transformer.h"

namespace edgerazor::model {

struct PerplexityOptions {
  int64_t seq_len = 512;      // tokens per window, BOS included
  int64_t max_tokens = 0;     // > 0: only the first max_tokens tokens of the stream
  int64_t batch_size = 4;     // windows per forward pass
  std::optional<int32_t> bos_id;  // prepended to each window when set
  std::function<void(int64_t done_tokens, int64_t total_tokens)> progress;
};

struct PerplexityResult {
  double mean_nll = 0.0;    // nats per predicted token
  double perplexity = 0.0;  // exp(mean_nll)
  int64_t tokens = 0;       // predicted tokens
  int64_t windows = 0;
};

PerplexityResult evaluate_perplexity(CausalLMImpl& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& options);

}  // namespace edgerazor::model
