// Implements: ZeroOptimizer::save / check_saved / load (see edgerazor/distributed/zero.h).
//
// <checkpoint>/trainer_state/zero/
//   layout.json          rank 0: stage, world size, AdamW step count, every unit's name, element
//                        count and parameters (name, elements), in flat order
//   rank_<r>.safetensors rank r: unit_<u>.exp_avg / unit_<u>.exp_avg_sq, F32, the rank's
//                        elements [r S, min((r + 1) S, numel)) of unit u (S = ceil(numel / W))
// The units' flat order does not depend on the world size, so a rank of any new world size reads
// the parts of the old ranks' files that cover its own range (memory-mapped, zero copy).
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "edgerazor/core/error.h"
#include "edgerazor/io/safetensors.h"
#include "zero_state.h"

namespace edgerazor::distributed {
namespace {

namespace fs = std::filesystem;
constexpr const char* kLayoutFormat = "edgerazor-zero-layout";
constexpr int kLayoutVersion = 1;

fs::path zero_dir(const std::string& checkpoint_dir) { return fs::path(checkpoint_dir) / "trainer_state" / "zero"; }
std::string rank_file(int rank) { return "rank_" + std::to_string(rank) + ".safetensors"; }
std::string moment_name(size_t unit, const char* which) { return "unit_" + std::to_string(unit) + "." + which; }

}  // namespace

void ZeroOptimizer::save(const std::string& checkpoint_dir) const {
  const ZeroOptimizer::State& s = *state_;
  const fs::path dir = zero_dir(checkpoint_dir);
  fs::create_directories(dir);
  const int W = s.group.world_size(), r = s.group.rank();
  std::vector<at::Tensor> keep;  // host copies stay alive until written
  std::vector<io::TensorBytes> tensors;
  for (size_t ui = 0; ui < s.units.size(); ++ui) {
    const Unit& u = s.units[ui];
    if (u.params.empty()) continue;
    const auto [begin, end] = owned_range(u.numel, W, r);
    if (end <= begin) continue;
    for (const auto& [which, t] : {std::pair<const char*, const at::Tensor*>{"exp_avg", &u.exp_avg}, {"exp_avg_sq", &u.exp_avg_sq}}) {
      keep.push_back(t->narrow(0, 0, end - begin).to(at::kCPU).contiguous());
      tensors.push_back({moment_name(ui, which), io::DType::kF32, {end - begin}, keep.back().data_ptr(),
                         static_cast<size_t>(keep.back().nbytes())});
    }
  }
  io::write_safetensors((dir / rank_file(r)).string(), tensors,
                        {{"rank", std::to_string(r)}, {"world_size", std::to_string(W)},
                         {"adam_steps", std::to_string(s.adam_steps)}});
  if (r != 0) return;
  nlohmann::json j;
  j["format"] = kLayoutFormat;
  j["version"] = kLayoutVersion;
  j["stage"] = sharding_name(s.stage);
  j["world_size"] = W;
  j["adam_steps"] = s.adam_steps;
  for (const Unit& u : s.units) {
    nlohmann::json unit{{"name", u.name}, {"numel", u.numel}};
    unit["params"] = nlohmann::json::array();
    for (size_t k = 0; k < u.params.size(); ++k) unit["params"].push_back({u.names[k], s.params[u.params[k]].numel()});
    j["units"].push_back(unit);
  }
  const fs::path path = dir / "layout.json";
  std::ofstream out(path);
  out << j.dump(1) << "\n";
  out.close();
  if (!out) throw FormatError(path.string(), "write failed");
}

void ZeroOptimizer::check_saved(const std::string& checkpoint_dir) const {
  const fs::path dir = zero_dir(checkpoint_dir);
  std::vector<fs::path> wanted{dir / "layout.json"};
  for (int r = 0; r < state_->group.world_size(); ++r) wanted.push_back(dir / rank_file(r));
  for (const auto& path : wanted)
    if (!fs::is_regular_file(path))
      throw FormatError(path.string(), "missing from the checkpoint being written: every rank writes its optimizer "
                                       "shard into rank 0's checkpoint folder, which must be on a filesystem all "
                                       "ranks share");
}

void ZeroOptimizer::load(const std::string& checkpoint_dir) {
  ZeroOptimizer::State& s = *state_;
  const fs::path dir = zero_dir(checkpoint_dir);
  const fs::path layout_path = dir / "layout.json";
  const std::string where = layout_path.string();
  nlohmann::json j;
  {
    std::ifstream in(layout_path);
    if (!in)
      throw FormatError(where, "missing: this checkpoint has no sharded optimizer state (written with "
                               "distributed.sharding: none); resume it with sharding none");
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(where, std::string("not valid JSON: ") + e.what());
    }
  }
  if (j.value("format", "") != kLayoutFormat || j.value("version", 0) != kLayoutVersion)
    throw FormatError(where, "not an edgerazor ZeRO layout (version " + std::to_string(kLayoutVersion) + ")");
  int old_world = 0;
  int64_t adam_steps = 0;
  try {
    old_world = j.at("world_size").get<int>();
    adam_steps = j.at("adam_steps").get<int64_t>();
    const auto& units = j.at("units");
    if (units.size() != s.units.size())
      throw FormatError(where, std::to_string(units.size()) + " units, this model has " + std::to_string(s.units.size()));
    for (size_t ui = 0; ui < s.units.size(); ++ui) {
      const Unit& u = s.units[ui];
      const auto& saved = units[ui];
      bool same = saved.at("name").get<std::string>() == u.name && saved.at("numel").get<int64_t>() == u.numel &&
                  saved.at("params").size() == u.params.size();
      for (size_t k = 0; same && k < u.params.size(); ++k)
        same = saved["params"][k][0].get<std::string>() == u.names[k] &&
               saved["params"][k][1].get<int64_t>() == s.params[u.params[k]].numel();
      if (!same)
        throw FormatError(where, "unit " + std::to_string(ui) + " (" + saved.value("name", "?") +
                                     ") does not match this model's " + u.name + ": another architecture or config");
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where, std::string("missing or mistyped field: ") + e.what());
  }
  if (old_world < 1) throw FormatError(where, "world_size must be >= 1");

  std::map<int, std::shared_ptr<io::SafetensorsFile>> files;
  const auto file_of = [&](int rank) {
    auto it = files.find(rank);
    if (it != files.end()) return it->second;
    const fs::path path = dir / rank_file(rank);
    if (!fs::exists(path)) throw FormatError(path.string(), "missing (the checkpoint was written by " +
                                                                std::to_string(old_world) + " ranks)");
    auto file = io::SafetensorsFile::open(path.string());
    const auto meta = file->metadata();
    if (!meta.count("adam_steps") || meta.at("adam_steps") != std::to_string(adam_steps))
      throw FormatError(path.string(), "AdamW step count differs from layout.json's " + std::to_string(adam_steps));
    return files[rank] = file;
  };
  at::NoGradGuard no_grad;
  const int W = s.group.world_size(), r = s.group.rank();
  for (size_t ui = 0; ui < s.units.size(); ++ui) {
    Unit& u = s.units[ui];
    if (u.params.empty()) continue;
    const auto [begin, end] = owned_range(u.numel, W, r);
    for (int k = 0; k < old_world; ++k) {
      const auto [old_begin, old_end] = owned_range(u.numel, old_world, k);
      const int64_t a = std::max(begin, old_begin), b = std::min(end, old_end);
      if (a >= b) continue;
      auto file = file_of(k);
      for (const auto& [which, target] : {std::pair<const char*, at::Tensor*>{"exp_avg", &u.exp_avg}, {"exp_avg_sq", &u.exp_avg_sq}}) {
        const std::string name = moment_name(ui, which);
        const io::TensorEntry* e = file->find(name);
        if (!e || e->dtype != io::DType::kF32 || e->shape != std::vector<int64_t>{old_end - old_begin})
          throw FormatError(file->path(), "tensor " + name + " is missing or not F32 of " + std::to_string(old_end - old_begin) +
                                              " elements");
        const float* data = reinterpret_cast<const float*>(file->data(*e));
        const at::Tensor source = at::from_blob(const_cast<float*>(data) + (a - old_begin), {b - a}, at::kFloat);
        target->narrow(0, a - begin, b - a).copy_(source);
      }
    }
  }
  s.adam_steps = adam_steps;
}

}  // namespace edgerazor::distributed
