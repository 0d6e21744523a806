// Implements: atomic training checkpoints (see include/edgerazor/train/checkpoint.h for the layout).
#include "edgerazor/train/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fcntl.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/train/checkpoint_manifest.h"

namespace edgerazor::train {
namespace {

namespace fs = std::filesystem;
constexpr const char* kStateFormat = "edgerazor-trainer-state";
constexpr int kStateVersion = 1;

void fsync_path(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) throw FormatError(p.string(), "cannot open to fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw FormatError(p.string(), "fsync failed");
}

void fsync_tree(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) fsync_path(e.path());
  fsync_path(dir);
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw FormatError(path.string(), "write failed: " + files::write_error_reason());
}

std::string step_name(int64_t step) { return "step_" + std::to_string(step); }


at::Generator cpu_generator() { return at::detail::getDefaultCPUGenerator(); }

}  // namespace

int64_t checkpoint_folder_step(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5 || name.size() > 5 + 18) return -1;  // 18 digits fit int64
  for (size_t i = 5; i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  return std::stoll(name.substr(5));
}

std::vector<CheckpointInfo> list_checkpoints(const std::string& run_dir) {
  std::vector<CheckpointInfo> out;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    const int64_t step = checkpoint_folder_step(e.path().filename().string());
    if (step < 0 || !e.is_directory() || !fs::exists(e.path() / "DONE")) continue;
    out.push_back({e.path().string(), step});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::optional<CheckpointInfo> latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::string checkpoint_staging_dir(const std::string& run_dir, int64_t step) {
  return (fs::path(run_dir) / "checkpoints" / (".tmp_" + step_name(step))).string();
}

std::string save_checkpoint(const std::string& run_dir, const model::CausalLMImpl& student,
                            const torch::optim::Optimizer& optimizer, const TrainerState& state,
                            const CheckpointContents& contents, int64_t keep_last) {
  stage_checkpoint(run_dir, student, &optimizer, state, contents);
  return commit_checkpoint(run_dir, state.step, keep_last);
}

std::string stage_checkpoint(const std::string& run_dir, const model::CausalLMImpl& student,
                             const torch::optim::Optimizer* optimizer, const TrainerState& state,
                             const CheckpointContents& contents) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const fs::path tmp = checkpoint_staging_dir(run_dir, state.step);
  fs::remove_all(tmp);
  fs::create_directories(tmp / "trainer_state");

  io::SaveOptions save;
  save.tokenizer_source_dir = contents.tokenizer_source_dir;
  io::save_pretrained(student, tmp.string(), save);
  if (!contents.quantization_yaml.empty()) write_text(tmp / "quantization.yaml", contents.quantization_yaml);
  write_text(tmp / "train_config.yaml", contents.config_yaml);

  if (optimizer) {
    torch::serialize::OutputArchive archive;
    optimizer->save(archive);
    archive.save_to((tmp / "trainer_state" / "optimizer.pt").string());
  }
  {
    torch::serialize::OutputArchive archive;
    archive.write("cpu_rng", cpu_generator().get_state());
    archive.save_to((tmp / "trainer_state" / "rng.pt").string());
  }
  nlohmann::json j;
  j["format"] = kStateFormat;
  j["version"] = kStateVersion;
  j["step"] = state.step;
  j["total_steps"] = state.total_steps;
  j["warmup_steps"] = state.warmup_steps;
  j["lr"] = state.lr;
  j["tokens_seen"] = state.tokens_seen;
  j["elapsed_seconds"] = state.elapsed_seconds;
  j["data_state"] = state.data_state;
  j["seed"] = state.seed;
  j["world_size"] = state.world_size;
  j["rows_per_step"] = state.rows_per_step;
  write_text(tmp / "trainer_state" / "state.json", j.dump(2) + "\n");
  return tmp.string();
}

std::string commit_checkpoint(const std::string& run_dir, int64_t step, int64_t keep_last) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const fs::path tmp = checkpoint_staging_dir(run_dir, step);
  const fs::path final_dir = root / step_name(step);
  write_manifest(tmp.string());
  write_text(tmp / "DONE", std::to_string(step) + "\n");
  fsync_tree(tmp);

  fs::remove_all(final_dir);  // a stale incomplete folder of the same step
  fs::rename(tmp, final_dir);
  fsync_path(root);

  // Checkpoints past this step are ones a resume skipped as damaged (this run went on from an
  // older one): they are not this run's history, and keeping them would make the keep-last rule
  // below delete the checkpoint just written.
  for (const auto& c : list_checkpoints(run_dir))
    if (c.step > step) fs::remove_all(c.path);
  // Keep the newest keep_last complete checkpoints; drop incomplete leftovers.
  const auto complete = list_checkpoints(run_dir);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep_last, 1)) < complete.size(); ++i)
    fs::remove_all(complete[i].path);
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".tmp_", 0) == 0 || (checkpoint_folder_step(name) >= 0 && !fs::exists(e.path() / "DONE")))
      fs::remove_all(e.path());
  }
  return final_dir.string();
}

TrainerState read_trainer_state(const std::string& checkpoint_dir) {
  const fs::path path = fs::path(checkpoint_dir) / "trainer_state" / "state.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_checkpoint_text(path.string()));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path.string(), std::string("not valid JSON: ") + e.what());
  }
  if (j.value("format", "") != kStateFormat) throw FormatError(path.string(), "not an edgerazor trainer state");
  if (j.value("version", 0) != kStateVersion)
    throw FormatError(path.string(), "unsupported version " + std::to_string(j.value("version", 0)));
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.total_steps = j.at("total_steps").get<int64_t>();
    s.warmup_steps = j.at("warmup_steps").get<int64_t>();
    s.lr = j.at("lr").get<double>();
    s.tokens_seen = j.at("tokens_seen").get<int64_t>();
    s.elapsed_seconds = j.at("elapsed_seconds").get<double>();
    s.data_state = j.at("data_state").get<std::string>();
    s.seed = j.at("seed").get<uint64_t>();
    s.world_size = j.value("world_size", 1);
    s.rows_per_step = j.value("rows_per_step", static_cast<int64_t>(0));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path.string(), std::string("missing or mistyped field: ") + e.what());
  }
  return s;
}

TrainerState load_checkpoint(const std::string& checkpoint_dir, model::CausalLMImpl& student,
                             torch::optim::Optimizer& optimizer) {
  return load_checkpoint(checkpoint_dir, student, &optimizer);
}

TrainerState load_checkpoint(const std::string& checkpoint_dir, model::CausalLMImpl& student,
                             torch::optim::Optimizer* optimizer) {
  const fs::path dir(checkpoint_dir);
  verify_checkpoint(checkpoint_dir);
  TrainerState state = read_trainer_state(checkpoint_dir);
  const int64_t folder_step = checkpoint_folder_step(dir.filename().string());
  if (folder_step >= 0 && state.step != folder_step)
    throw FormatError((dir / "trainer_state" / "state.json").string(),
                      "step " + std::to_string(state.step) + " does not match the folder " + dir.filename().string());
  if (state.step < 0 || state.total_steps < 0 || state.tokens_seen < 0 || state.world_size < 1)
    throw FormatError((dir / "trainer_state" / "state.json").string(), "negative step, token count or world size");
  io::load_weights(student, checkpoint_dir);
  // Optimizer state is either optimizer.pt or sharded (trainer_state/zero/, distributed/zero.h):
  // resuming one kind as the other is refused, naming the fix.
  const fs::path optimizer_file = dir / "trainer_state" / "optimizer.pt";
  const bool sharded = fs::exists(dir / "trainer_state" / "zero" / "layout.json");
  if (optimizer && !fs::exists(optimizer_file) && sharded)
    throw FormatError(optimizer_file.string(),
                      "missing: this checkpoint holds sharded optimizer state (trainer_state/zero/, written with "
                      "distributed.sharding optimizer, gradients or parameters); resume it with a sharding stage, "
                      "on any number of ranks");
  if (!optimizer && !sharded)
    throw FormatError(checkpoint_dir, "has no sharded optimizer state (written with distributed.sharding: none); "
                                      "resume it with sharding none");
  if (optimizer) try {
    torch::serialize::InputArchive archive;
    archive.load_from(optimizer_file.string());
    optimizer->load(archive);
  } catch (const c10::Error& e) {
    throw FormatError((dir / "trainer_state" / "optimizer.pt").string(),
                      std::string("cannot restore the optimizer: ") + e.what_without_backtrace());
  }
  try {
    torch::serialize::InputArchive archive;
    archive.load_from((dir / "trainer_state" / "rng.pt").string());
    at::Tensor rng;
    archive.read("cpu_rng", rng);
    auto gen = cpu_generator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  } catch (const c10::Error& e) {
    throw FormatError((dir / "trainer_state" / "rng.pt").string(),
                      std::string("cannot restore the RNG: ") + e.what_without_backtrace());
  }
  return state;
}

}  // namespace edgerazor::train
