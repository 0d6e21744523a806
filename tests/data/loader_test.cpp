// DataLoader: mixture frequencies, per-epoch permutations, determinism, exact resume, rank
// sharding, packing/padding with label masks, eval iteration, config validation.
#include <gmock/gmock.h>

#include <map>
#include <numeric>
#include <set>

#include "data/test_util.h"
#include "edgerazor/core/error.h"
#include "edgerazor/data/loader.h"

namespace {
using namespace data_test;
using edgerazor::ConfigError;
using edgerazor::FormatError;
using edgerazor::data::Batch;
using edgerazor::data::DataConfig;
using edgerazor::data::DataLoader;
using edgerazor::data::DataSource;
using ::testing::HasSubstr;

constexpr int64_t kT = 4;

class LoaderTest : public TempDirTest {
 protected:
  // A source whose token at stream position p is base + p (one document per 10 tokens).
  std::string counting_shard(const std::string& name, int32_t base, int32_t tokens) {
    std::vector<std::vector<int32_t>> docs;
    for (int32_t p = 0; p < tokens; ++p) {
      if (p % 10 == 0) docs.emplace_back();
      docs.back().push_back(base + p);
    }
    write_shard(path(name), docs, {}, 0, 4);
    return path(name);
  }
  // Three sources of 50, 80 and 20 rows of kT tokens, weights 0.5/0.3/0.2.
  DataConfig three_sources() {
    DataConfig c;
    c.sources = {{"a", {counting_shard("a.bin", 100000, 50 * kT)}, 0.5},
                 {"b", {counting_shard("b.bin", 200000, 80 * kT)}, 0.3},
                 {"c", {counting_shard("c.bin", 300000, 20 * kT)}, 0.2}};
    c.seq_len = kT;
    return c;
  }
};

// Row r of a batch as a vector.
std::vector<int64_t> row(const std::vector<int64_t>& v, int64_t r, int64_t T) {
  return {v.begin() + r * T, v.begin() + (r + 1) * T};
}

void expect_same(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.batch_size, b.batch_size);
  EXPECT_EQ(a.input_ids, b.input_ids);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.attention_mask, b.attention_mask);
  EXPECT_EQ(a.source_index, b.source_index);
}

TEST_F(LoaderTest, MixtureFrequenciesMatchWeights) {
  DataLoader loader(three_sources(), 30);
  ASSERT_EQ(loader.rows_per_epoch(), 150);
  std::map<int32_t, int> counts;
  for (int b = 0; b < 100; ++b) {  // 3000 rows
    const Batch batch = loader.next();
    ASSERT_EQ(batch.batch_size, 30);
    ASSERT_EQ(batch.input_ids.size(), 30u * kT);
    for (int64_t r = 0; r < 30; ++r) {
      const int32_t s = batch.source_index[r];
      counts[s]++;
      // The row is kT consecutive tokens of source s, starting at a row boundary.
      const auto ids = row(batch.input_ids, r, kT);
      EXPECT_EQ(ids[0] / 100000, s + 1);
      EXPECT_EQ(ids[0] % kT, 0);
      for (int64_t t = 1; t < kT; ++t) EXPECT_EQ(ids[t], ids[0] + t);
      EXPECT_EQ(row(batch.labels, r, kT), ids);
      EXPECT_EQ(row(batch.attention_mask, r, kT), std::vector<int64_t>(kT, 1));
    }
  }
  EXPECT_NEAR(counts[0] / 3000.0, 0.5, 0.03);
  EXPECT_NEAR(counts[1] / 3000.0, 0.3, 0.03);
  EXPECT_NEAR(counts[2] / 3000.0, 0.2, 0.03);
  EXPECT_EQ(loader.epoch(), 20);  // 3000 rows / 150 rows per epoch
  EXPECT_EQ(loader.sources()[2].units, 20);
  EXPECT_DOUBLE_EQ(loader.sources()[1].probability, 0.3);
}

TEST_F(LoaderTest, EachSourceEpochIsAFreshPermutation) {
  DataConfig c;
  c.sources = {{"a", {counting_shard("a.bin", 0, 25 * kT)}, 1.0}};
  c.seq_len = kT;
  DataLoader loader(c, 5);
  std::vector<int64_t> order;
  for (int b = 0; b < 15; ++b) {
    const Batch batch = loader.next();
    for (int64_t r = 0; r < 5; ++r) order.push_back(batch.input_ids[r * kT] / kT);
  }
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    std::vector<int64_t> ep(order.begin() + e * 25, order.begin() + (e + 1) * 25);
    std::vector<int64_t> sorted = ep;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(25);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(sorted, all) << "epoch " << e << " is not a permutation";
    epochs.push_back(ep);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  std::vector<int64_t> identity(25);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(epochs[0], identity);
  // shuffle: false reads in file order.
  c.shuffle = false;
  DataLoader plain(c, 25);
  for (int e = 0; e < 2; ++e) {
    const Batch batch = plain.next();
    for (int64_t r = 0; r < 25; ++r) EXPECT_EQ(batch.input_ids[r * kT] / kT, r);
  }
}

TEST_F(LoaderTest, DeterministicGivenSeed) {
  const DataConfig c = three_sources();
  DataLoader a(c, 8), b(c, 8);
  for (int i = 0; i < 30; ++i) expect_same(a.next(), b.next());
  DataConfig other = c;
  other.seed = 1234;
  DataLoader d(other, 8), e(c, 8);
  int differ = 0;
  for (int i = 0; i < 5; ++i) differ += d.next().input_ids != e.next().input_ids;
  EXPECT_EQ(differ, 5);
}

TEST_F(LoaderTest, ResumeGivesIdenticalBatches) {
  const DataConfig c = three_sources();
  for (int skip : {0, 7, 23}) {  // 23 batches of 8 rows cross several source epochs
    DataLoader original(c, 8);
    for (int i = 0; i < skip; ++i) original.next();
    const std::string state = original.state_json();
    std::vector<Batch> expected;
    for (int i = 0; i < 12; ++i) expected.push_back(original.next());
    DataLoader resumed(c, 8);
    resumed.next();  // a used loader is fully overwritten by restore()
    resumed.restore(state);
    EXPECT_EQ(resumed.state_json(), state);
    EXPECT_EQ(resumed.epoch(), skip * 8 / 150);
    for (int i = 0; i < 12; ++i) expect_same(resumed.next(), expected[i]);
  }
}

TEST_F(LoaderTest, RanksSplitTheOneRankStream) {
  const DataConfig c = three_sources();
  for (int W : {2, 3}) {
    DataLoader single(c, 6);
    std::vector<DataLoader> ranks;
    for (int r = 0; r < W; ++r) ranks.emplace_back(c, 6 / W, r, W);
    for (int b = 0; b < 40; ++b) {  // 240 rows: past an epoch of every source
      const Batch one = single.next();
      std::vector<Batch> parts;
      for (auto& l : ranks) parts.push_back(l.next());
      for (int64_t j = 0; j < 6; ++j) {
        const Batch& p = parts[j % W];
        const int64_t pj = j / W;
        EXPECT_EQ(row(one.input_ids, j, kT), row(p.input_ids, pj, kT)) << "W=" << W << " batch " << b << " row " << j;
        EXPECT_EQ(row(one.labels, j, kT), row(p.labels, pj, kT));
        EXPECT_EQ(row(one.attention_mask, j, kT), row(p.attention_mask, pj, kT));
        EXPECT_EQ(one.source_index[j], p.source_index[pj]);
      }
      // Every rank saves the same position, so rank 0's state resumes any rank.
      for (auto& l : ranks) EXPECT_EQ(l.state_json(), single.state_json());
    }
    DataLoader rank1(c, 6 / W, 1, W);
    rank1.restore(single.state_json());
    const Batch one = single.next();
    const Batch r1 = rank1.next();
    EXPECT_EQ(row(one.input_ids, 1, kT), row(r1.input_ids, 0, kT));
  }
}

TEST_F(LoaderTest, PackingLabelsAndPadding) {
  // Documents end with EOS = 2; the mask leaves the prompt parts unlabelled.
  write_shard(path("p.bin"), {{10, 11, 12, 2}, {20, 21, 2}, {30, 31, 32, 33, 34, 2}},
              {{0, 1, 1, 1}, {0, 0, 1}, {1, 1, 1, 1, 1, 1}});
  DataConfig c;
  c.sources = {{"p", {path("p.bin")}, 1.0}};
  c.seq_len = kT;
  c.shuffle = false;
  c.pad_id = 7;
  DataLoader loader(c, 4);
  const Batch b = loader.next();
  EXPECT_EQ(b.input_ids, (std::vector<int64_t>{10, 11, 12, 2, 20, 21, 2, 30, 31, 32, 33, 34, 2, 7, 7, 7}));
  EXPECT_EQ(b.labels, (std::vector<int64_t>{-100, 11, 12, 2, -100, -100, 2, 30, 31, 32, 33, 34, 2, -100, -100, -100}));
  EXPECT_EQ(b.attention_mask, (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(b.label_tokens(), 10);
  EXPECT_EQ(b.real_tokens(), 13);
  EXPECT_EQ(loader.sources()[0].label_tokens, 10);
  EXPECT_EQ(loader.sources()[0].documents, 3);
}

TEST_F(LoaderTest, PaddingOneDocumentPerRowKeepsEosWhenTruncating) {
  write_shard(path("p.bin"), {{10, 11, 12, 2}, {20, 21, 2}, {30, 31, 32, 33, 34, 2}},
              {{0, 1, 1, 1}, {0, 0, 1}, {0, 1, 1, 1, 1, 1}});
  DataConfig c;
  c.sources = {{"p", {path("p.bin")}, 1.0}};
  c.seq_len = kT;
  c.packing = "pad";
  c.shuffle = false;
  DataLoader loader(c, 3);
  EXPECT_EQ(loader.rows_per_epoch(), 3);
  const Batch b = loader.next();
  EXPECT_EQ(b.input_ids, (std::vector<int64_t>{10, 11, 12, 2, 20, 21, 2, 0, 30, 31, 32, 2}));
  EXPECT_EQ(b.labels, (std::vector<int64_t>{-100, 11, 12, 2, -100, -100, 2, -100, -100, 31, 32, 2}));
  EXPECT_EQ(b.attention_mask, (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1}));
}

TEST_F(LoaderTest, PackingSpansShardsOfOneSource) {
  counting_shard("part_1.bin", 0, 6);
  counting_shard("part_0.bin", 100, 6);
  DataConfig c;
  c.sources = {{"parts", {path("part_*.bin")}, 1.0}};
  c.seq_len = 5;
  c.shuffle = false;
  DataLoader loader(c, 3);
  EXPECT_EQ(loader.sources()[0].files.size(), 2u);
  const Batch b = loader.next();  // part_0 then part_1 (sorted glob), cut into rows of 5
  EXPECT_EQ(b.input_ids, (std::vector<int64_t>{100, 101, 102, 103, 104, 105, 0, 1, 2, 3, 4, 5, 0, 0, 0}));
  EXPECT_EQ(b.attention_mask, (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}));
}

TEST_F(LoaderTest, EvalIteratesOnceInOrderAcrossRanks) {
  DataConfig c = three_sources();
  c.eval_sources = {{"v1", {counting_shard("v1.bin", 500000, 4 * kT)}, 1.0},
                    {"v2", {counting_shard("v2.bin", 600000, 3 * kT - 1)}, 1.0}};
  DataLoader eval(c, 3, 0, 1, true);
  std::vector<int64_t> firsts, sizes;
  Batch b;
  for (int pass = 0; pass < 2; ++pass) {
    firsts.clear();
    sizes.clear();
    while (eval.next_eval(b)) {
      sizes.push_back(b.batch_size);
      for (int64_t r = 0; r < b.batch_size; ++r) firsts.push_back(b.input_ids[r * kT]);
    }
    EXPECT_EQ(sizes, (std::vector<int64_t>{3, 3, 1}));
    EXPECT_EQ(firsts, (std::vector<int64_t>{500000, 500004, 500008, 500012, 600000, 600004, 600008}));
    EXPECT_EQ(b.source_index, (std::vector<int32_t>{1}));
    EXPECT_EQ(row(b.attention_mask, 0, kT), (std::vector<int64_t>{1, 1, 1, 0}));  // last row is short
    eval.reset_eval();
  }
  std::vector<int64_t> union_firsts;
  for (int r = 0; r < 2; ++r) {
    DataLoader part(c, 3, r, 2, true);
    std::vector<int64_t> mine;
    while (part.next_eval(b))
      for (int64_t j = 0; j < b.batch_size; ++j) mine.push_back(b.input_ids[j * kT]);
    EXPECT_EQ(mine.size(), r == 0 ? 4u : 3u);
    union_firsts.insert(union_firsts.end(), mine.begin(), mine.end());
  }
  std::sort(union_firsts.begin(), union_firsts.end());
  EXPECT_EQ(union_firsts, firsts);
  EXPECT_THROW(eval.next(), std::logic_error);
  DataLoader train(c, 3);
  EXPECT_THROW(train.next_eval(b), std::logic_error);
}

std::string config_error(const DataConfig& c, const edgerazor::data::KeyLocator& locate = nullptr) {
  try {
    edgerazor::data::validate(c, "data", locate);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST_F(LoaderTest, ValidateNamesTheKey) {
  const DataConfig good = three_sources();
  EXPECT_EQ(config_error(good), "");
  DataConfig c = good;
  c.sources[1].weight = -1;
  EXPECT_THAT(config_error(c), HasSubstr("data.sources[1].weight: must be > 0"));
  c = good;
  c.sources[2].weight = 0;
  EXPECT_THAT(config_error(c), HasSubstr("data.sources[2].weight: must be > 0"));
  c = good;
  c.sources[0].paths = {path("x*.bin")};
  EXPECT_THAT(config_error(c), HasSubstr("data.sources[0].paths[0]: no file matches '" + path("x*.bin") + "'"));
  c = good;
  c.sources[0].paths.push_back(path("missing.bin"));
  EXPECT_THAT(config_error(c), HasSubstr("data.sources[0].paths[1]: no such file"));
  c = good;
  c.sources[0].paths.clear();
  EXPECT_THAT(config_error(c), HasSubstr("data.sources[0].paths: at least one"));
  c = good;
  c.sources[1].name = "a";
  EXPECT_THAT(config_error(c), HasSubstr("data.sources[1].name: duplicate source name 'a'"));
  c = good;
  c.sources.clear();
  EXPECT_THAT(config_error(c), HasSubstr("data.sources: at least one training source"));
  c = good;
  c.packing = "stack";
  EXPECT_THAT(config_error(c), HasSubstr("data.packing: must be 'pack' or 'pad' (got 'stack')"));
  c = good;
  c.seq_len = 1;
  EXPECT_THAT(config_error(c), HasSubstr("data.seq_len: must be in [2,"));
  c = good;
  c.pad_id = -3;
  EXPECT_THAT(config_error(c), HasSubstr("data.pad_id"));
  c = good;
  c.eval_sources = {{"v", {path("nothing*.bin")}, 1.0}};
  EXPECT_THAT(config_error(c), HasSubstr("data.eval_sources[0].paths[0]: no file matches"));
  // The YAML loader's locator adds file:line:column.
  c.sources[1].weight = 0;
  const std::string located = config_error(c, [](const std::string& key) {
    return edgerazor::data::KeyLocation{"run.yaml", key == "data.sources[1].weight" ? 12 : 1, 5};
  });
  EXPECT_THAT(located, HasSubstr("run.yaml:12:5: data.sources[1].weight: must be > 0"));
  // The constructor validates too, and checks loader arguments.
  EXPECT_THROW(DataLoader(c, 4), ConfigError);
  EXPECT_THROW(DataLoader(good, 0), ConfigError);
  EXPECT_THROW(DataLoader(good, 2, 2, 2), ConfigError);
  EXPECT_THROW(DataLoader(good, 2, 0, 1, true), ConfigError);  // no eval sources
}

TEST_F(LoaderTest, ConstructionRejectsBadShardsAndMixedTokenizers) {
  DataConfig c;
  write_shard(path("v512.bin"), {{1, 2}}, {}, 512);
  write_shard(path("v1000.bin"), {{1, 2}}, {}, 1000);
  c.sources = {{"a", {path("v512.bin")}, 1.0}, {"b", {path("v1000.bin")}, 1.0}};
  c.seq_len = 4;
  try {
    DataLoader l(c, 2);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("data.sources[1].paths"));
    EXPECT_THAT(e.what(), HasSubstr("different tokenizers"));
  }
  write_file(path("junk.bin"), std::string(2000, 'x'));
  c.sources = {{"a", {path("junk.bin")}, 1.0}};
  try {
    DataLoader l(c, 2);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("junk.bin: at byte 0: bad magic"));
  }
  write_shard(path("empty.bin"), {});
  c.sources = {{"e", {path("empty.bin")}, 1.0}};
  EXPECT_THROW(DataLoader(c, 2), ConfigError);
  c.sources = {{"a", {path("v512.bin")}, 1.0}};
  c.pad_id = 512;
  try {
    DataLoader l(c, 2);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("data.pad_id: 512 is outside the shards' vocabulary of 512"));
  }
  c.pad_id = 0;
  DataLoader ok(c, 2);
  EXPECT_EQ(ok.vocab_size(), 512);
  EXPECT_EQ(ok.max_token_id(), 2);
}

TEST_F(LoaderTest, RestoreRejectsForeignState) {
  const DataConfig c = three_sources();
  DataLoader a(c, 4);
  a.next();
  const std::string state = a.state_json();
  auto error = [&](const DataConfig& cfg, const std::string& s) {
    try {
      DataLoader l(cfg, 4);
      l.restore(s);
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error(c, state), "");
  DataConfig other = c;
  other.seed = 1;
  EXPECT_THAT(error(other, state), HasSubstr("data loader state: seed is 3407 in the saved state but 1 now"));
  other = c;
  other.sources[0].weight = 0.9;
  EXPECT_THAT(error(other, state), HasSubstr("sources[0].probability"));
  other = c;
  other.seq_len = 8;
  EXPECT_THAT(error(other, state), HasSubstr("seq_len"));
  other = c;
  other.sources.pop_back();
  EXPECT_THAT(error(other, state), HasSubstr("the number of sources"));
  EXPECT_THAT(error(c, "{nope"), HasSubstr("not valid JSON"));
  EXPECT_THAT(error(c, R"({"format": "edgerazor-data-loader"})"), HasSubstr("missing or mistyped field"));
}

}  // namespace
