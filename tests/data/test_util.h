// Shared helpers of the data tests: a temporary folder per test, synthetic shards, running
// edgerazor-data.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fixtures/subprocess.h"
#include "fixtures/temp_dir.h"
#include "edgerazor/data/shard.h"

namespace data_test {
namespace fs = std::filesystem;

using edgerazor_test::kBin;
using edgerazor_test::kData;
using edgerazor_test::kStories;
inline const std::string kQwen = kData + "/models/qwen3-tokenizer";
inline const std::string kTrainText = kData + "/text/tinystories-train-sample.txt";
inline const std::string kValidText = kData + "/text/tinystories-valid-sample.txt";

using edgerazor_test::read_file;
using edgerazor_test::TempDirTest;
using edgerazor_test::write_file;

// Writes a shard with the given documents (labels empty = all labelled).
inline edgerazor::data::ShardInfo write_shard(const std::string& path, const std::vector<std::vector<int32_t>>& docs,
                                              const std::vector<std::vector<uint8_t>>& labels = {},
                                              int64_t vocab_size = 0, int32_t bytes_per_token = 0) {
  edgerazor::data::ShardWriterOptions o;
  o.vocab_size = vocab_size;
  o.bytes_per_token = bytes_per_token;
  o.label_mask = !labels.empty();
  edgerazor::data::ShardWriter w(path, o);
  for (size_t i = 0; i < docs.size(); ++i) w.add_document(docs[i], labels.empty() ? std::vector<uint8_t>{} : labels[i]);
  return w.finish();
}

using edgerazor_test::Result;
using edgerazor_test::run;

}  // namespace data_test
