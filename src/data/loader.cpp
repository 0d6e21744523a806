// DataLoader: units per source (packed rows or documents), counter-based mixture sampling over
// a global row stream, per-source epoch permutations, rank interleaving, eval iteration.
#include "edgerazor/data/loader.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

#include "edgerazor/core/error.h"
#include "edgerazor/data/shard.h"

namespace edgerazor::data {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Keyed hash of a few words; stable across platforms and library versions (no std:: RNGs,
// whose distributions are implementation-defined).
uint64_t mix(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return splitmix64(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) ^ d);
}

constexpr uint64_t kTagSource = 0x736f75726365ull;  // "source"
constexpr uint64_t kTagShuffle = 0x73687566666cull; // "shuffl"

// Uniform in [0, 1) from the top 53 bits.
double unit_double(uint64_t x) { return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0); }

// Fisher-Yates with an explicit splitmix64 stream and Lemire's unbiased bounded draw.
std::vector<uint64_t> permutation(uint64_t n, uint64_t key) {
  std::vector<uint64_t> p(n);
  for (uint64_t i = 0; i < n; ++i) p[i] = i;
  uint64_t state = key;
  auto next = [&] { return splitmix64(state++); };
  for (uint64_t i = n; i > 1; --i) {
    // draw j uniform in [0, i)
    uint64_t x = next();
    unsigned __int128 m = static_cast<unsigned __int128>(x) * i;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < i) {
      const uint64_t threshold = (0 - i) % i;
      while (low < threshold) {
        x = next();
        m = static_cast<unsigned __int128>(x) * i;
        low = static_cast<uint64_t>(m);
      }
    }
    std::swap(p[i - 1], p[static_cast<uint64_t>(m >> 64)]);
  }
  return p;
}

// One source: its shards read as one virtual token stream, cut into units.
struct Source {
  SourceStats stats;
  std::vector<ShardReader> shards;
  std::vector<uint64_t> shard_begin;  // virtual offset of each shard, plus the total at the end
  std::vector<uint64_t> doc_begin;    // pad mode: virtual document starts, plus the total
  uint64_t units = 0;
  // Training permutation cache.
  int64_t perm_epoch = -1;
  std::vector<uint64_t> perm;

  uint64_t total() const { return shard_begin.back(); }

  // Copies virtual tokens [a, b) to ids/labels.
  void copy(uint64_t a, uint64_t b, int64_t* ids, int64_t* labels) const {
    size_t s = std::upper_bound(shard_begin.begin(), shard_begin.end(), a) - shard_begin.begin() - 1;
    while (a < b) {
      const uint64_t end = std::min(b, shard_begin[s + 1]);
      const uint64_t lo = a - shard_begin[s], hi = end - shard_begin[s];
      shards[s].copy_tokens(lo, hi, ids);
      shards[s].copy_labels(lo, hi, labels, ids);
      ids += hi - lo;
      labels += hi - lo;
      a = end;
      ++s;
    }
  }
};

}  // namespace

int64_t Batch::label_tokens() const {
  return std::count_if(labels.begin(), labels.end(), [](int64_t l) { return l != kIgnoreIndex; });
}

int64_t Batch::real_tokens() const { return std::count(attention_mask.begin(), attention_mask.end(), int64_t{1}); }

struct DataLoader::State {
  DataConfig config;
  int64_t batch_size = 0;
  int rank = 0, world_size = 1;
  bool eval = false;
  bool pack = true;
  std::vector<Source> sources;
  std::vector<SourceStats> stats;
  std::vector<double> cumulative;  // training: cumulative probabilities
  int64_t vocab_size = 0, max_token_id = -1;
  uint64_t rows_per_epoch = 0;
  // Training position: global rows [0, row) are consumed by the whole group; taken[i] of them
  // came from source i.
  uint64_t row = 0;
  std::vector<uint64_t> taken;
  // Eval position: index into this rank's share of the eval units.
  uint64_t eval_cursor = 0;
  std::vector<std::pair<uint32_t, uint64_t>> eval_units;  // (source, unit), all ranks

  size_t source_of(uint64_t g) const {
    const double u = unit_double(mix(config.seed, kTagSource, g));
    const size_t i = std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin();
    return std::min(i, cumulative.size() - 1);
  }

  // Fills row `r` of `out` with unit `u` of source `s`.
  void fill(Batch& out, int64_t r, size_t s, uint64_t u) const {
    const Source& src = sources[s];
    const int64_t T = config.seq_len;
    int64_t* ids = out.input_ids.data() + r * T;
    int64_t* labels = out.labels.data() + r * T;
    int64_t* attn = out.attention_mask.data() + r * T;
    uint64_t n;
    if (pack) {
      const uint64_t a = u * static_cast<uint64_t>(T), b = std::min(src.total(), a + T);
      src.copy(a, b, ids, labels);
      n = b - a;
    } else {
      const uint64_t a = src.doc_begin[u], b = src.doc_begin[u + 1];
      if (b - a <= static_cast<uint64_t>(T)) {
        src.copy(a, b, ids, labels);
        n = b - a;
      } else {  // first T-1 tokens + the last one (its EOS)
        src.copy(a, a + T - 1, ids, labels);
        src.copy(b - 1, b, ids + T - 1, labels + T - 1);
        n = T;
      }
    }
    std::fill(attn, attn + n, 1);
    out.source_index[r] = static_cast<int32_t>(s);
  }

  Batch empty_batch(int64_t rows) const {
    Batch b;
    b.batch_size = rows;
    b.seq_len = config.seq_len;
    b.input_ids.assign(rows * config.seq_len, config.pad_id);
    b.labels.assign(rows * config.seq_len, kIgnoreIndex);
    b.attention_mask.assign(rows * config.seq_len, 0);
    b.source_index.assign(rows, -1);
    return b;
  }

  uint64_t training_unit(size_t s, uint64_t k) {
    Source& src = sources[s];
    const int64_t e = static_cast<int64_t>(k / src.units);
    const uint64_t i = k % src.units;
    if (!config.shuffle) return i;
    if (src.perm_epoch != e) {
      src.perm = permutation(src.units, mix(config.seed, kTagShuffle, s, static_cast<uint64_t>(e)));
      src.perm_epoch = e;
    }
    return src.perm[i];
  }
};

DataLoader::DataLoader(const DataConfig& config, int64_t batch_size, int rank, int world_size, bool eval)
    : state_(std::make_unique<State>()) {
  validate(config);
  if (batch_size < 1) throw ConfigError("", 0, 0, "batch_size", "must be >= 1 (got " + std::to_string(batch_size) + ")");
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw ConfigError("", 0, 0, "rank", "rank " + std::to_string(rank) + " is outside world size " + std::to_string(world_size));
  State& st = *state_;
  st.config = config;
  st.batch_size = batch_size;
  st.rank = rank;
  st.world_size = world_size;
  st.eval = eval;
  st.pack = config.packing == "pack";
  const auto& list = eval ? config.eval_sources : config.sources;
  const std::string section = eval ? "data.eval_sources" : "data.sources";
  if (list.empty()) throw ConfigError("", 0, 0, section, "no sources to read");
  double weight_sum = 0;
  for (const auto& s : list) weight_sum += s.weight;
  std::string vocab_file;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string key = section + "[" + std::to_string(i) + "]";
    Source src;
    src.stats.name = list[i].name.empty() ? key : list[i].name;
    src.stats.files = resolve_paths(list[i], key);
    src.shard_begin.push_back(0);
    if (!st.pack) src.doc_begin.push_back(0);
    for (const auto& f : src.stats.files) {
      ShardReader r(f);
      const ShardInfo& info = r.info();
      if (info.vocab_size > 0) {
        if (st.vocab_size > 0 && info.vocab_size != st.vocab_size)
          throw ConfigError("", 0, 0, key + ".paths",
                            f + " was written for a vocabulary of " + std::to_string(info.vocab_size) + " but " + vocab_file +
                                " for " + std::to_string(st.vocab_size) + " (different tokenizers?)");
        st.vocab_size = info.vocab_size;
        vocab_file = f;
      }
      st.max_token_id = std::max(st.max_token_id, r.verify_token_ids());
      const uint64_t base = src.shard_begin.back();
      if (!st.pack)
        for (uint64_t d = 1; d <= r.documents(); ++d) src.doc_begin.push_back(base + r.document_begin(d));
      src.stats.documents += static_cast<int64_t>(r.documents());
      src.stats.label_tokens += static_cast<int64_t>(r.count_label_tokens());
      src.shard_begin.push_back(base + r.size());
      src.shards.push_back(std::move(r));
    }
    src.stats.tokens = static_cast<int64_t>(src.total());
    if (src.total() == 0) throw ConfigError("", 0, 0, key, "source '" + src.stats.name + "' has no tokens");
    if (src.stats.label_tokens == 0)  // it would train with loss 0 and gradient 0, and say nothing
      throw ConfigError("", 0, 0, key, "source '" + src.stats.name + "' has no labelled tokens: its mask hides every token "
                                       "(were the JSONL records all prompts without responses?)");
    const uint64_t T = static_cast<uint64_t>(config.seq_len);
    src.units = st.pack ? (src.total() + T - 1) / T : src.doc_begin.size() - 1;
    src.stats.units = static_cast<int64_t>(src.units);
    src.stats.probability = eval ? 0.0 : list[i].weight / weight_sum;
    st.rows_per_epoch += src.units;
    st.stats.push_back(src.stats);
    st.sources.push_back(std::move(src));
  }
  if (st.vocab_size > 0 && config.pad_id >= st.vocab_size)
    throw ConfigError("", 0, 0, "data.pad_id", std::to_string(config.pad_id) + " is outside the shards' vocabulary of " +
                                                   std::to_string(st.vocab_size));
  if (eval) {
    for (size_t s = 0; s < st.sources.size(); ++s)
      for (uint64_t u = 0; u < st.sources[s].units; ++u) st.eval_units.emplace_back(static_cast<uint32_t>(s), u);
  } else {
    double c = 0;
    for (const auto& s : st.stats) st.cumulative.push_back(c += s.probability);
    st.cumulative.back() = 1.0;
    st.taken.assign(st.sources.size(), 0);
  }
}

DataLoader::~DataLoader() = default;
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&&) noexcept = default;

Batch DataLoader::next() {
  State& st = *state_;
  if (st.eval) throw std::logic_error("DataLoader::next() on an eval loader; use next_eval()");
  const uint64_t B = st.batch_size, W = st.world_size, base = st.row;
  Batch out = st.empty_batch(st.batch_size);
  for (uint64_t g = base; g < base + B * W; ++g) {
    const size_t s = st.source_of(g);
    const uint64_t k = st.taken[s]++;
    if ((g - base) % W == static_cast<uint64_t>(st.rank)) st.fill(out, static_cast<int64_t>((g - base) / W), s, st.training_unit(s, k));
  }
  st.row = base + B * W;
  return out;
}

bool DataLoader::next_eval(Batch& out, uint64_t units_limit) {
  State& st = *state_;
  if (!st.eval) throw std::logic_error("DataLoader::next_eval() on a training loader; construct it with eval = true");
  const uint64_t U = std::min<uint64_t>(st.eval_units.size(), units_limit), W = st.world_size, r = st.rank;
  const uint64_t mine = U > r ? (U - r + W - 1) / W : 0;
  if (st.eval_cursor >= mine) return false;
  const uint64_t rows = std::min<uint64_t>(st.batch_size, mine - st.eval_cursor);
  out = st.empty_batch(static_cast<int64_t>(rows));
  for (uint64_t j = 0; j < rows; ++j) {
    const auto& [s, u] = st.eval_units[(st.eval_cursor + j) * W + r];
    st.fill(out, static_cast<int64_t>(j), s, u);
  }
  st.eval_cursor += rows;
  return true;
}

void DataLoader::reset_eval() { state_->eval_cursor = 0; }

std::string DataLoader::state_json() const {
  const State& st = *state_;
  nlohmann::json j;
  j["format"] = "edgerazor-data-loader";
  j["version"] = 1;
  j["row"] = st.row;
  j["taken"] = st.taken;
  j["seed"] = st.config.seed;
  j["seq_len"] = st.config.seq_len;
  j["packing"] = st.config.packing;
  j["shuffle"] = st.config.shuffle;
  nlohmann::json src = nlohmann::json::array();
  for (const auto& s : st.sources)
    src.push_back({{"name", s.stats.name}, {"units", s.units}, {"tokens", s.stats.tokens}, {"probability", s.stats.probability}});
  j["sources"] = src;
  if (st.eval) j["eval_cursor"] = st.eval_cursor;
  return j.dump();
}

void DataLoader::restore(const std::string& text) {
  State& st = *state_;
  const std::string what = "data loader state";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(what, std::string("not valid JSON: ") + e.what());
  }
  auto mismatch = [&](const std::string& key, const std::string& saved, const std::string& now) {
    throw FormatError(what, key + " is " + saved + " in the saved state but " + now + " now (config or data changed)");
  };
  try {
    if (j.at("format") != "edgerazor-data-loader") throw FormatError(what, "format is not edgerazor-data-loader");
    if (j.at("version") != 1) throw FormatError(what, "unsupported version " + j.at("version").dump());
    if (j.at("seed").get<uint64_t>() != st.config.seed) mismatch("seed", j["seed"].dump(), std::to_string(st.config.seed));
    if (j.at("seq_len").get<int64_t>() != st.config.seq_len) mismatch("seq_len", j["seq_len"].dump(), std::to_string(st.config.seq_len));
    if (j.at("packing") != st.config.packing) mismatch("packing", j["packing"].dump(), st.config.packing);
    if (j.at("shuffle").get<bool>() != st.config.shuffle) mismatch("shuffle", j["shuffle"].dump(), st.config.shuffle ? "true" : "false");
    const auto& src = j.at("sources");
    if (src.size() != st.sources.size())
      mismatch("the number of sources", std::to_string(src.size()), std::to_string(st.sources.size()));
    for (size_t i = 0; i < st.sources.size(); ++i) {
      const std::string k = "sources[" + std::to_string(i) + "]";
      if (src[i].at("units").get<uint64_t>() != st.sources[i].units)
        mismatch(k + ".units", src[i]["units"].dump(), std::to_string(st.sources[i].units));
      if (src[i].at("probability").get<double>() != st.sources[i].stats.probability)
        mismatch(k + ".probability", src[i]["probability"].dump(), std::to_string(st.sources[i].stats.probability));
    }
    if (st.eval) {
      st.eval_cursor = j.value("eval_cursor", uint64_t{0});
      return;
    }
    const auto taken = j.at("taken").get<std::vector<uint64_t>>();
    const uint64_t row = j.at("row").get<uint64_t>();
    if (taken.size() != st.sources.size()) mismatch("taken", std::to_string(taken.size()) + " counts", std::to_string(st.sources.size()));
    uint64_t sum = 0;
    for (uint64_t t : taken) sum += t;
    if (sum != row) throw FormatError(what, "row " + std::to_string(row) + " != sum of taken " + std::to_string(sum));
    st.row = row;
    st.taken = taken;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(what, std::string("missing or mistyped field: ") + e.what());
  }
}

int64_t DataLoader::epoch() const {
  return state_->eval ? 0 : static_cast<int64_t>(state_->row / state_->rows_per_epoch);
}
int64_t DataLoader::batch_size() const { return state_->batch_size; }
int64_t DataLoader::seq_len() const { return state_->config.seq_len; }
int64_t DataLoader::rows_per_epoch() const { return static_cast<int64_t>(state_->rows_per_epoch); }
int64_t DataLoader::global_row() const { return static_cast<int64_t>(state_->row); }
int64_t DataLoader::vocab_size() const { return state_->vocab_size; }
int64_t DataLoader::max_token_id() const { return state_->max_token_id; }
const std::vector<SourceStats>& DataLoader::sources() const { return state_->stats; }

}  // namespace edgerazor::data
