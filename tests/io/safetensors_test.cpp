// safetensors reader/writer: round trips, the real stories260K file, sharding, and one hostile
// file per validation branch.
#include "edgerazor/io/safetensors.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "fixtures/temp_dir.h"
#include "edgerazor/core/error.h"
#include "edgerazor/io/tensor_io.h"
#include "fixtures/test_paths.h"

namespace {
namespace fs = std::filesystem;
using edgerazor::FormatError;
using namespace edgerazor::io;
using ::testing::HasSubstr;

const std::string kData = EDGERAZOR_SHARED_DATA_DIR;

class SafetensorsTest : public edgerazor_test::TempDirTest {
 protected:
  // Writes a file from a raw header JSON and a data buffer.
  std::string write_raw(const std::string& name, const std::string& header, const std::string& data) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << data;
    return path;
  }
  // Expects open() to fail with a message containing every part.
  void expect_error(const std::string& path, const std::vector<std::string>& parts) {
    try {
      SafetensorsFile::open(path);
      FAIL() << "no error for " << path;
    } catch (const FormatError& e) {
      EXPECT_THAT(e.what(), HasSubstr(fs::path(path).filename().string()));
      for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
    }
  }
};

TEST_F(SafetensorsTest, RoundTripsDtypesShapesAndMetadata) {
  const NamedTensors tensors = {
      {"b.f32", at::arange(12, at::kFloat).view({3, 4}) / 7.0},
      {"a.bf16", at::randn({5}).to(at::kBFloat16)},
      {"c.f16", at::randn({2, 2, 2}).to(at::kHalf)},
      {"d.i8", at::arange(-4, 4, at::kChar)},
      {"e.u8", at::arange(0, 255, 17, at::kByte)},
      {"scalar", at::scalar_tensor(3.5, at::kFloat)},
      {"empty", at::empty({0, 3}, at::kFloat)},
  };
  const std::string path = (dir_ / "t.safetensors").string();
  save_safetensors(path, tensors, {{"format", "pt"}, {"note", "hello"}});
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->metadata().at("note"), "hello");
  EXPECT_EQ(file->data_start() % 8, 0u);  // header padded to 8 bytes
  ASSERT_EQ(file->tensors().size(), tensors.size());
  // Layout like the Rust writer: descending dtype size, then name.
  std::vector<std::string> order;
  for (const auto& e : file->tensors()) order.push_back(e.name);
  EXPECT_EQ(order, (std::vector<std::string>{"b.f32", "empty", "scalar", "a.bf16", "c.f16", "d.i8", "e.u8"}));
  for (const auto& [name, t] : tensors) {
    const TensorEntry* e = file->find(name);
    ASSERT_NE(e, nullptr) << name;
    const at::Tensor back = tensor_view(*file, *e);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(at::equal(back, t)) << name;
  }
  // The header is plain JSON with the documented keys.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, ' ');
  in.read(header.data(), n);
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["b.f32"]["dtype"], "F32");
  EXPECT_EQ(j["b.f32"]["shape"], nlohmann::json({3, 4}));
  EXPECT_EQ(j["b.f32"]["data_offsets"], nlohmann::json({0, 48}));
}

TEST_F(SafetensorsTest, ReadsTheRealStoriesCheckpoint) {
  const auto ckpt = SafetensorsCheckpoint::open(kData + "/models/stories260K-hf");
  const auto names = ckpt.names();
  EXPECT_EQ(names.size(), 1u + 5u * 9u + 1u);  // embed, 5 x 9 per layer, final norm
  const auto embed = ckpt.find("model.embed_tokens.weight");
  ASSERT_TRUE(embed.has_value());
  EXPECT_EQ(embed->entry->shape, (std::vector<int64_t>{512, 64}));
  EXPECT_FALSE(ckpt.find("lm_head.weight").has_value());  // tied
  const at::Tensor w = tensor_view(*embed->file, *embed->entry);
  EXPECT_EQ(w.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::isfinite(w).all().item<bool>());
}

TEST_F(SafetensorsTest, ShardedCheckpointRoundTrip) {
  NamedTensors tensors;
  for (int i = 0; i < 6; ++i) tensors.emplace_back("layer." + std::to_string(i) + ".weight", at::randn({16, 16}));
  const auto files = save_safetensors_checkpoint(dir_.string(), tensors, /*max_shard_bytes=*/2500);
  ASSERT_EQ(files.back(), "model.safetensors.index.json");
  EXPECT_EQ(files.size(), 4u);  // 1024-byte tensors, two per shard
  EXPECT_TRUE(fs::exists(dir_ / "model-00001-of-00003.safetensors"));
  const auto loaded = load_safetensors(dir_.string());
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, t] : tensors) EXPECT_TRUE(at::equal(loaded.at(name), t)) << name;
  // Saving again unsharded replaces the shards and the index.
  save_safetensors_checkpoint(dir_.string(), tensors);
  EXPECT_TRUE(fs::exists(dir_ / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir_ / "model-00001-of-00003.safetensors"));
  for (const auto& item : fs::directory_iterator(dir_)) EXPECT_NE(item.path().extension(), ".tmp");
}

TEST_F(SafetensorsTest, IndexNamingAMissingTensorFails) {
  save_safetensors((dir_ / "model-00001-of-00001.safetensors").string(), {{"a", at::ones({2})}});
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"metadata": {}, "weight_map": {"a": "model-00001-of-00001.safetensors", "b": "model-00001-of-00001.safetensors"}})";
  try {
    SafetensorsCheckpoint::open(dir_.string());
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("'b'"));
    EXPECT_THAT(e.what(), HasSubstr("missing"));
  }
}

TEST_F(SafetensorsTest, TruncatedFile) {
  const std::string path = (dir_ / "full.safetensors").string();
  save_safetensors(path, {{"model.layers.0.mlp.up_proj.weight", at::randn({8, 8})}});
  const auto size = fs::file_size(path);
  fs::resize_file(path, size - 10);
  expect_error(path, {"model.layers.0.mlp.up_proj.weight", "end offset 256 > data size 246", "truncated"});
  fs::resize_file(path, 5);
  expect_error(path, {"too short"});
}

TEST_F(SafetensorsTest, HostileHeaderBranches) {
  const std::string data(8, '\0');
  // Header length beyond the file.
  {
    const std::string path = (dir_ / "len.safetensors").string();
    std::ofstream out(path, std::ios::binary);
    uint64_t n = 1000;
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << "{}";
    out.close();
    expect_error(path, {"header length 1000 runs past the end"});
  }
  expect_error(write_raw("json.safetensors", "{\"a\": {\"dtype\": \"F32\",", data), {"not valid JSON"});
  expect_error(write_raw("notobj.safetensors", "[1, 2]   ", ""), {"does not start with '{'"});
  expect_error(write_raw("dtype.safetensors", R"({"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}})", data),
               {"'w'", "unknown dtype 'F33'"});
  expect_error(write_raw("f8.safetensors", R"({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})", data),
               {"'w'", "unsupported dtype F8_E4M3"});
  expect_error(write_raw("size.safetensors", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", data),
               {"'w'", "needs 12 bytes", "span 8"});
  expect_error(write_raw("neg.safetensors", R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", data),
               {"'w'", "shape"});
  expect_error(write_raw("overlap.safetensors",
                         R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                         data),
               {"'b'", "overlaps"});
  expect_error(write_raw("hole.safetensors", R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", data),
               {"'a'", "hole"});
  expect_error(write_raw("past.safetensors", R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", data),
               {"'a'", "end offset 16 > data size 8"});
  expect_error(write_raw("trail.safetensors", R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", data),
               {"trailing garbage"});
  expect_error(write_raw("dup.safetensors",
                         R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                             "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                         data),
               {"'a'", "twice"});
  expect_error(write_raw("meta.safetensors", R"({"__metadata__": {"k": 1}})", ""), {"__metadata__", "not a string"});
  expect_error(write_raw("offs.safetensors", R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", data),
               {"'a'", "end offset 4 < begin offset 8"});
  expect_error((dir_ / "absent.safetensors").string(), {"cannot open"});
}

TEST_F(SafetensorsTest, WriterRejectsInconsistentInput) {
  const float x[2] = {1, 2};
  EXPECT_THROW(write_safetensors((dir_ / "w.safetensors").string(), {{"a", DType::kF32, {3}, x, 8}}), FormatError);
  EXPECT_THROW(write_safetensors((dir_ / "w.safetensors").string(),
                                 {{"a", DType::kF32, {2}, x, 8}, {"a", DType::kF32, {2}, x, 8}}),
               FormatError);
  EXPECT_FALSE(fs::exists(dir_ / "w.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "w.safetensors.tmp"));
}

}  // namespace
