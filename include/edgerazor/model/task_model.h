// lm-evaluation-harness's `hf` model backend (HFLM, lm_eval 0.4.13) over our transformer, so a
// task scores the same here as there: the same tokenization of context/continuation pairs
// (trailing context spaces moved into the continuation, the tokenizer's default BOS, the prefix
// token for empty contexts), the same left truncation to max_length, rolling windows for
// perplexity, and greedy generation cut at the stop strings. The model runs as it will be
// deployed: whatever quantizers (ternary/INT4 weights, A8, KV8) are on it.
//
// Speed: requests are scored in batches; the choices of one multiple-choice item share their
// context, which runs once and is reused through the KV cache.
#pragma once

#include <cstdint>
#include <optional>

#include "edgerazor/eval/evaluator.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/text/tokenizer.h"

namespace edgerazor::model {

struct TaskModelOptions {
  int64_t batch_size = 8;
  int64_t max_length = 0;               // 0: the model's max_position_embeddings (lm-eval's rule)
  std::optional<bool> add_bos_token;    // unset: the tokenizer's default (lm-eval's add_bos_token=None)
  bool share_context = true;            // score a context once for all its continuations
};

class TaskLanguageModel : public eval::LanguageModel {
 public:
  TaskLanguageModel(CausalLMImpl& model, const text::Tokenizer& tokenizer, const TaskModelOptions& options = {});

  std::vector<eval::LoglikelihoodResult> loglikelihood(const std::vector<eval::LoglikelihoodRequest>& requests,
                                                       const eval::RequestProgress& progress) override;
  std::vector<double> loglikelihood_rolling(const std::vector<std::string>& texts, const eval::RequestProgress& progress) override;
  std::vector<std::string> generate_until(const std::vector<eval::GenerationRequest>& requests,
                                          const eval::RequestProgress& progress) override;

  // Token-level scoring (HFLM._loglikelihood_tokens): log P(continuation | context).
  using TokenPair = std::pair<std::vector<int64_t>, std::vector<int64_t>>;
  std::vector<eval::LoglikelihoodResult> score_tokens(const std::vector<TokenPair>& pairs, const eval::RequestProgress& progress);
  std::vector<int64_t> encode(const std::string& text) const;  // HFLM.tok_encode
  int64_t max_length() const { return max_length_; }

 private:
  TokenPair encode_pair(const std::string& context, const std::string& continuation) const;
  void score_batch(const std::vector<TokenPair>& pairs, const std::vector<size_t>& rows, std::vector<eval::LoglikelihoodResult>& out);
  // Several contexts at once, each with the continuations (rows) that share it.
  void score_shared_contexts(const std::vector<TokenPair>& pairs, const std::vector<const std::vector<size_t>*>& groups,
                             std::vector<eval::LoglikelihoodResult>& out);
  // log P and greedy flags of the predicted tokens: hidden (N, C), one target and one result row each.
  void score_positions(const at::Tensor& hidden, const std::vector<int64_t>& targets, const std::vector<size_t>& row_of,
                       std::vector<eval::LoglikelihoodResult>& out);

  CausalLMImpl& model_;
  const text::Tokenizer& tokenizer_;
  TaskModelOptions options_;
  int64_t max_length_ = 0;
  int64_t prefix_token_ = 0;  // BOS, else EOS
  bool add_bos_ = false;
};

}  // namespace edgerazor::model
