// Implements: DataLoader, the trainer's batch source: memory-mapped token shards (shard.h),
// packing or padding to seq_len, a weighted mixture of sources, rank sharding, exact resume.
// Torch-free: batches are plain row-major int64 arrays the trainer wraps into tensors.
//
// Legend: B batch_size (rows per rank), T seq_len, W world_size, r rank.
//
// Units. Each source is cut into units once, at construction:
//   pack: the source's shards are read as one token stream (shards in resolve_paths order,
//         documents already end with EOS when written by edgerazor-data) and cut into
//         consecutive T-token rows; the final partial row is kept and right-padded.
//   pad:  one document per row, right-padded with pad_id; a document longer than T keeps its
//         first T-1 tokens and its last token (the EOS), as the reference truncates (spec §9.2).
// labels[t] = input_ids[t] where the shard's label mask is 1, else -100 (padding and prompt
// tokens too). Labels are aligned with input_ids (Hugging Face style): the trainer shifts.
// attention_mask is 1 on real tokens, 0 on padding (packed documents see each other, as in GPT
// pretraining).
//
// The global stream (training). Row g (g = 0, 1, 2, ...) is a pure function of (config, g):
//   source(g) = i with probability w_i / sum(w), drawn from a counter-based RNG keyed by
//               (seed, g), so it never depends on rank, world size or batch size;
//   content   = unit perm_{i,e}[k mod N_i] of source i, where k is the number of earlier rows
//               from source i, N_i its unit count, e = k / N_i its epoch and perm_{i,e} a
//               permutation seeded by (seed, i, e) (identity when shuffle is off). Each source
//               reshuffles whenever it wraps around; the stream is infinite.
// Rank sharding: all ranks advance through the global stream together, B*W rows per call of
// next(); rank r's batch b holds global rows (b*B + j)*W + r for j = 0..B-1. So the W ranks'
// batch b together hold exactly the 1-rank stream's rows [b*B*W, (b+1)*B*W): row j of a 1-rank
// batch of size B*W equals row j/W of rank (j mod W)'s batch (interleaved, not concatenated).
// Ranks see disjoint rows; the union over ranks is the 1-rank stream.
// epoch() = global rows consumed / rows_per_epoch() (the sum of all sources' unit counts): with
// weights proportional to sizes one epoch is one pass over all data.
//
// Eval (constructed with eval = true): the eval_sources in order, each one's units in file
// order, no mixing or shuffling; rank r takes units r, r+W, ... of that sequence. next_eval()
// fills batches of up to B rows (only the last is shorter, never empty) and returns false at the
// end; ranks may differ by one batch. reset_eval() starts over.
//
// Resume: state_json() records the global row cursor and the per-source row counts (all the RNG
// state there is). After the same number of next() calls it is the same text on every rank, so
// rank 0 can save it for all; restore() on a loader with the same config yields exactly the
// batches the original yields after the save (with another batch size or world size it resumes
// from the same global row).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgerazor/data/data_config.h"

namespace edgerazor::data {

inline constexpr int64_t kIgnoreIndex = -100;

struct Batch {  // row-major (B, T) int64 arrays
  int64_t batch_size = 0, seq_len = 0;
  std::vector<int64_t> input_ids;       // (B, T)
  std::vector<int64_t> labels;          // (B, T); -100 = no loss (padding, prompt tokens)
  std::vector<int64_t> attention_mask;  // (B, T); 1 real token, 0 padding
  std::vector<int32_t> source_index;    // (B,) index into sources (eval: eval_sources) of each row
  // Tokens that carry a label (labels != -100), for tokens/s and loss normalisation.
  int64_t label_tokens() const;
  // Real tokens (attention_mask == 1).
  int64_t real_tokens() const;
};

struct SourceStats {
  std::string name;
  std::vector<std::string> files;  // resolved shard paths
  int64_t tokens = 0, documents = 0, label_tokens = 0;
  int64_t units = 0;               // rows one pass over this source yields
  double probability = 0.0;        // w_i / sum(w) (0 for eval sources)
};

class DataLoader {  // deterministic given (config, batch_size, rank, world_size); pimpl
 public:
  // Validates the config (ConfigError), opens and checks every shard (FormatError). A source
  // with no tokens is a ConfigError naming it.
  DataLoader(const DataConfig& config, int64_t batch_size, int rank = 0, int world_size = 1, bool eval = false);
  ~DataLoader();
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;

  // Training: this rank's B rows of the next B*W global rows (infinite).
  Batch next();
  // Exact position, as one line of JSON: {"format":"edgerazor-data-loader","version":1,
  // "row":g,"taken":[k_0,...],...} plus the fingerprint of what it depends on.
  std::string state_json() const;
  // Continues from a state_json(). Throws FormatError("data loader state", ...) when the text is
  // malformed or was made with another seed, seq_len, packing, shuffle, sources or unit counts.
  void restore(const std::string& state_json);
  int64_t epoch() const;

  // Eval mode: iterates the held-out data once in order; returns false at the end.
  // units_limit: only the first units_limit units of the whole (all-rank) sequence count, so a
  // fixed evaluation budget covers the same rows whatever the world size.
  bool next_eval(Batch& out, uint64_t units_limit = UINT64_MAX);
  void reset_eval();

  int64_t batch_size() const;
  int64_t seq_len() const;
  int64_t rows_per_epoch() const;  // sum of unit counts over the (training or eval) sources
  int64_t global_row() const;      // training: global rows consumed by all ranks together
  // Largest tokenizer vocabulary recorded in the shards (0 when none recorded), and the largest
  // token id seen in the shard headers (-1 when unknown): the trainer checks them against the model.
  int64_t vocab_size() const;
  int64_t max_token_id() const;
  const std::vector<SourceStats>& sources() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace edgerazor::data
