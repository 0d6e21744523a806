// Autoregressive decoding with the KV cache: greedy, or temperature + top-k + top-p (nucleus)
// sampling with a seeded generator so runs are reproducible, with transformers' repetition
// penalty. The steps run in transformers' order: repetition penalty, temperature, top-k, top-p.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "edgerazor/model/transformer.h"

namespace edgerazor::model {

struct GenerationOptions {
  int64_t max_new_tokens = 128;
  bool greedy = false;  // also implied by temperature <= 0
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;                // keep the k most likely tokens (0 = all)
  double repetition_penalty = 1.0;  // > 1: logits of tokens already in prompt or output are divided
                                    // by it when positive, multiplied when negative (CTRL, as HF)
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // generation ends after emitting one of these (EOS)
};

// What sampling picks from: the candidate tokens, most likely first, and their probabilities
// (renormalised to sum 1). Greedy options give the argmax with probability 1.
struct TokenDistribution {
  std::vector<int64_t> ids;
  std::vector<double> probs;
};
TokenDistribution sampling_distribution(const at::Tensor& logits /*(V)*/, const GenerationOptions& options,
                                        const std::vector<int64_t>& context = {});

// Picks the next token from one row of logits (V) under the options; rng_state advances.
// `context` is every token so far (prompt and output), for the repetition penalty.
int64_t select_token(const at::Tensor& logits /*(V)*/, const GenerationOptions& options, uint64_t& rng_state,
                     const std::vector<int64_t>& context = {});

// Returns the generated ids (without the prompt). on_token sees each id as it is produced and
// may return false to stop early. The model runs under NoGradGuard in eval mode.
std::vector<int64_t> generate(CausalLMImpl& model, const std::vector<int64_t>& prompt,
                              const GenerationOptions& options,
                              const std::function<bool(int64_t)>& on_token = nullptr);

// Several prompts decoded together: left-padded into one batch, one forward per step for all of
// them, each row with its own options (and sampling generator). Row b's result equals
// generate(prompts[b], options[b]) up to float round-off of the batched matmuls. on_token(b, id)
// may return false to end row b; a row also ends at a stop id or its max_new_tokens.
std::vector<std::vector<int64_t>> generate_batch(CausalLMImpl& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 const std::vector<GenerationOptions>& options,
                                                 const std::function<bool(size_t, int64_t)>& on_token = nullptr);

// Where the first of `stops` occurs in `text` (std::string::npos: none); `length` gets its size.
// Stop strings end generation and are cut from the output, as llama.cpp's and transformers' do.
size_t find_stop_string(const std::string& text, const std::vector<std::string>& stops, size_t& length);

}  // namespace edgerazor::model
