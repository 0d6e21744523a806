// Autoregressive decoding with the KV cache: greedy, or temperature + top-p (nucleus) sampling
// with a seeded generator so runs are reproducible.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "edgerazor/model/transformer.h"

namespace edgerazor::model {

struct GenerationOptions {
  int64_t max_new_tokens = 128;
  bool greedy = false;  // also implied by temperature <= 0
  double temperature = 1.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // generation ends after emitting one of these (EOS)
};

// Picks the next token from one row of logits (V) under the options; rng_state advances.
int64_t select_token(const at::Tensor& logits /*(V)*/, const GenerationOptions& options, uint64_t& rng_state);

// Returns the generated ids (without the prompt). on_token sees each id as it is produced and
// may return false to stop early. The model runs under NoGradGuard in eval mode.
std::vector<int64_t> generate(CausalLMImpl& model, const std::vector<int64_t>& prompt,
                              const GenerationOptions& options,
                              const std::function<bool(int64_t)>& on_token = nullptr);

}  // namespace edgerazor::model
