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
#include "edgerazor/data/shard.h"

namespace data_test {
namespace fs = std::filesystem;

inline const std::string kBin = EDGERAZOR_BIN_DIR;
inline const std::string kData = EDGERAZOR_SHARED_DATA_DIR;
inline const std::string kStories = kData + "/models/stories260K-hf";
inline const std::string kQwen = kData + "/models/qwen3-tokenizer";
inline const std::string kTrainText = kData + "/text/tinystories-train-sample.txt";
inline const std::string kValidText = kData + "/text/tinystories-valid-sample.txt";

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("er_data_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void expect_no_tmp() const {
    for (const auto& e : fs::recursive_directory_iterator(dir_))
      EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
  fs::path dir_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

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
