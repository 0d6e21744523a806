// Implements: the data section of a run config (sources with weights, held-out sources,
// sequence length, packing) as plain structs, and its validation. Torch-free and YAML-free:
// the trainer's YAML loader fills DataConfig and calls validate(), which names the bad key.
//
// YAML form (keys equal the field names):
//   data:
//     sources:
//       - {name: stories, paths: [data/train_*.bin], weight: 0.7}
//       - {name: chat, paths: [data/chat.bin], weight: 0.3}
//     eval_sources:
//       - {name: valid, paths: [data/valid.bin]}
//     seq_len: 256
//     packing: pack          # pack | pad
//     pad_id: 0
//     seed: 3407
//     shuffle: true
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace edgerazor::data {

struct DataSource {
  std::string name;                // for logs; defaults to "sources[i]" in messages when empty
  std::vector<std::string> paths;  // shard files or globs (*, ?, [..] in the file name part)
  double weight = 1.0;             // mixture weight (> 0); ignored for eval sources
};

struct DataConfig {
  std::vector<DataSource> sources;       // training mixture
  std::vector<DataSource> eval_sources;  // held-out (may be empty)
  int64_t seq_len = 1024;                // T: tokens per row
  std::string packing = "pack";          // pack: concatenate documents (EOS between, as written by
                                         //   edgerazor-data), cut into seq_len rows;
                                         // pad: one document per row, right-padded (too long ones
                                         //   keep their first seq_len-1 tokens plus their last)
  int64_t pad_id = 0;                    // token used for padding (labels there are -100 anyway)
  uint64_t seed = 3407;
  bool shuffle = true;                   // training rows in a fresh random order each source epoch
};

// Where a key sits in the config file, when the caller knows (the YAML loader does).
struct KeyLocation {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based; 0 = unknown
};
// Maps a full key path such as "data.sources[1].weight" to its location.
using KeyLocator = std::function<KeyLocation(const std::string& key)>;

// Checks values and that every path/glob matches at least one file, and opens no shard. Throws
// edgerazor::ConfigError naming the key, e.g.
//   "data.sources[1].weight: must be > 0 (got -1)"
//   "data.sources[0].paths[0]: no file matches 'x*.bin'"
// `prefix` is the key path of the section ("data"); `locate` adds file:line:column.
void validate(const DataConfig& config, const std::string& prefix = "data", const KeyLocator& locate = nullptr);

// The files of one source: each path as written when it names a file, else the sorted matches of
// its glob; duplicates removed (first occurrence wins). Throws ConfigError (key `key`) when a
// path matches nothing.
std::vector<std::string> resolve_paths(const DataSource& source, const std::string& key = "data.sources[0]");

}  // namespace edgerazor::data
