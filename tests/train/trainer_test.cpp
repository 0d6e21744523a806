// edgerazor-train end to end on the real stories260K model and TinyStories text: QAD beats PTQ and
// logs every loss part, checkpoints are complete, a SIGKILLed run resumes bit-identically,
// SIGTERM checkpoints and stops, a NaN loss stops with the last good checkpoint named.
// Each run uses the shipped configs/tiny-stories260k-w1.58.yaml with --set overrides for size.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/config/train_config.h"
#include "edgerazor/core/error.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/train/checkpoint.h"
#include "fixtures/test_paths.h"

namespace edgerazor::train {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kBin = EDGERAZOR_BIN_DIR;
const std::string kSource = EDGERAZOR_SOURCE_DIR;
const std::string kData = EDGERAZOR_SHARED_DATA_DIR;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Token shards of the TinyStories samples, made once by edgerazor-data; a scratch folder per test.
class TrainerRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = fs::temp_directory_path() / ("edgerazor-train-test-data-" + std::to_string(::getpid()));
    fs::create_directories(data_dir_);
    for (const char* split : {"train", "valid"}) {
      const std::string cmd = kBin + "/edgerazor-data encode --tokenizer " + kData + "/models/stories260K-hf --bos --split auto --in " +
                              kData + "/text/tinystories-" + split + "-sample.txt --out " + (data_dir_ / split).string() +
                              ".bin > /dev/null";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
  }
  static void TearDownTestSuite() { fs::remove_all(data_dir_); }

  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("edgerazor-train-test-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // The shipped tiny config, shrunk: 64-token rows, 8 per step, no periodic eval or saves.
  std::vector<std::string> args(const std::string& name, std::vector<std::string> extra = {}) const {
    std::vector<std::string> a = {kBin + "/edgerazor-train", "configs/tiny-stories260k-w1.58.yaml", "--threads", "1", "--set",
                                  "run.output_dir=" + dir_.string(), "--set", "run.name=" + name, "--set",
                                  "data.sources[0].paths=[" + (data_dir_ / "train.bin").string() + "]", "--set",
                                  "data.eval_sources[0].paths=[" + (data_dir_ / "valid.bin").string() + "]", "--set",
                                  "data.seq_len=64", "--set", "train.eval_interval=0", "--set", "train.save_interval=0",
                                  "--set", "train.eval_batches=8", "--set", "train.log_interval=1", "--set",
                                  "train.warmup_steps=2"};
    for (auto& e : extra) {
      a.push_back("--set");
      a.push_back(e);
    }
    return a;
  }

  // Starts the tool in the source folder (the config's relative paths), output to <dir>/<name>.log.
  pid_t spawn(const std::vector<std::string>& a, const std::string& log_name) const {
    const std::string log = (dir_ / (log_name + ".log")).string();
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (::chdir(kSource.c_str()) != 0) ::_exit(127);
      FILE* f = std::freopen(log.c_str(), "w", stdout);
      if (!f || ::dup2(::fileno(stdout), 2) < 0) ::_exit(127);
      std::vector<char*> argv;
      for (const auto& s : a) argv.push_back(const_cast<char*>(s.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return pid;
  }
  static int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  int run(const std::vector<std::string>& a, const std::string& log_name) const { return wait_exit(spawn(a, log_name)); }
  std::string log(const std::string& name) const { return read_file(dir_ / (name + ".log")); }
  nlohmann::json summary(const std::string& log_name) const {  // the tool's last line
    std::istringstream in(log(log_name));
    std::string line, last;
    while (std::getline(in, line))
      if (!line.empty() && line[0] == '{') last = line;
    return last.empty() ? nlohmann::json() : nlohmann::json::parse(last);
  }

  static fs::path data_dir_;
  fs::path dir_;
};
fs::path TrainerRun::data_dir_;

TEST_F(TrainerRun, QadBeatsPtqAndLogsEveryLossPart) {
  ASSERT_EQ(run(args("qad", {"train.max_steps=40", "train.save_interval=20"}), "qad"), 0) << log("qad");
  const auto s = summary("qad");
  ASSERT_FALSE(s.is_null()) << log("qad");
  const double ptq = s["initial_eval_loss"], qad = s["final_eval_loss"], teacher = s["teacher_eval_loss"];
  std::cout << "[ measured ] held-out loss: teacher " << teacher << ", PTQ " << ptq << ", QAD (40 steps) " << qad
            << "; " << s["tokens_per_s"].get<double>() << " tokens/s\n";
  EXPECT_LT(qad, ptq - 1.0);    // quantization without training is far off; 40 QAD steps recover most of it
  EXPECT_GT(qad, teacher);      // ...but not beyond the full-precision teacher
  EXPECT_EQ(s["steps"], 40);

  const fs::path run_dir = dir_ / "qad";
  const auto records = read_jsonl(run_dir / "metrics.jsonl");
  int train_records = 0, eval_records = 0;
  for (const auto& r : records) {
    if (r["type"] == "train") {
      ++train_records;
      for (const char* key : {"loss", "task_ce", "eakld", "eakld.gamma", "lafd", "distill", "lr", "grad_norm",
                              "tokens_per_s", "tokens"})
        EXPECT_TRUE(r.contains(key)) << key << " missing in " << r.dump();
      // The chosen layers' own losses and how often each was chosen: 3 per micro-batch.
      double selected = 0;
      for (const auto& [key, value] : r.items())
        if (key.rfind("lafd.layer_", 0) == 0 && key.size() > 9 && key.substr(key.size() - 9) == ".selected") {
          selected += value.get<double>();
          EXPECT_TRUE(r.contains(key.substr(0, key.size() - 9))) << key;
        }
      EXPECT_NEAR(selected, 3.0, 1e-9) << r.dump();
      // total = 0.2 CE + 4 EAKLD + 1 LAFD, per micro-batch (one per step here)
      EXPECT_NEAR(r["loss"].get<double>(), 0.2 * r["task_ce"].get<double>() + r["distill"].get<double>(), 1e-4);
      EXPECT_NEAR(r["distill"].get<double>(), 4.0 * r["eakld"].get<double>() + r["lafd"].get<double>(), 1e-4);
    } else if (r["type"] == "eval") {
      ++eval_records;
      EXPECT_TRUE(r.contains("eval_loss") && r.contains("eval_ppl"));
    }
  }
  EXPECT_EQ(train_records, 40);
  // The schedule as logged: warmup 2 (the first update uses lr 0), then cosine from 2e-3 to 0 over 38 steps.
  std::map<int64_t, double> lr;
  for (const auto& r : records)
    if (r["type"] == "train") lr[r["step"]] = r["lr"];
  EXPECT_DOUBLE_EQ(lr[1], 0.0);
  EXPECT_DOUBLE_EQ(lr[2], 1e-3);
  EXPECT_DOUBLE_EQ(lr[3], 2e-3);
  EXPECT_NEAR(lr[22], 2e-3 * 0.5 * (1 + std::cos(M_PI * 19.0 / 38.0)), 1e-12);
  EXPECT_NEAR(lr[40], 2e-3 * 0.5 * (1 + std::cos(M_PI * 37.0 / 38.0)), 1e-12);
  EXPECT_EQ(eval_records, 2);  // step 0 (PTQ) and the end

  // The newest two checkpoints are complete HF folders with the resolved quantization config.
  const auto all = list_checkpoints(run_dir.string());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].step, 20);
  EXPECT_EQ(all[1].step, 40);
  const fs::path ck = all[1].path;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "quantization.yaml", "train_config.yaml",
                        "trainer_state/state.json", "trainer_state/optimizer.pt", "trainer_state/rng.pt", "DONE"})
    EXPECT_TRUE(fs::exists(ck / f)) << f;
  const auto q = config::load_quant_config_file((ck / "quantization.yaml").string());
  const auto run_config = config::load_train_config((ck / "train_config.yaml").string(), {}, /*check_files=*/false);
  auto resolved = *run_config.quantization;
  resolved.preset.clear();
  EXPECT_EQ(config::to_yaml(q), config::to_yaml(resolved));  // reads back as exactly the run's config
  EXPECT_EQ(read_trainer_state(ck.string()).step, 40);
  auto model = io::load_pretrained(ck.string());
  EXPECT_EQ(model->config.vocab_size, 512);
  for (const auto& e : fs::recursive_directory_iterator(run_dir))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
}

TEST_F(TrainerRun, SigkillThenResumeEndsBitIdentical) {
  const std::vector<std::string> common = {"train.max_steps=24", "train.save_interval=3", "train.eval_at_start=false"};
  ASSERT_EQ(run(args("whole", common), "whole"), 0) << log("whole");

  const pid_t pid = spawn(args("killed", common), "killed");
  const fs::path killed_dir = dir_ / "killed";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (list_checkpoints(killed_dir.string()).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // land somewhere in later steps
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);
  const auto at_kill = latest_checkpoint(killed_dir.string());
  ASSERT_TRUE(at_kill);
  ASSERT_LT(at_kill->step, 24) << "the run finished before the kill; nothing resumed";

  ASSERT_EQ(run(args("killed", common), "again"), 2);  // a fresh start would overwrite it
  EXPECT_THAT(log("again"), HasSubstr("already has a checkpoint"));
  auto resume = args("killed", common);
  resume.push_back("--resume");
  ASSERT_EQ(run(resume, "resumed"), 0) << log("resumed");
  EXPECT_THAT(log("resumed"), HasSubstr("resumed from"));

  const fs::path a = dir_ / "whole/checkpoints/step_24", b = killed_dir / "checkpoints/step_24";
  ASSERT_TRUE(fs::exists(a / "DONE") && fs::exists(b / "DONE"));
  EXPECT_TRUE(read_file(a / "model.safetensors") == read_file(b / "model.safetensors")) << "final weights differ";
  // The logged losses of every step agree too (the resumed log drops what the killed run wrote
  // after its last checkpoint).
  std::map<int64_t, double> la, lb;
  for (const auto& r : read_jsonl(dir_ / "whole/metrics.jsonl"))
    if (r["type"] == "train") la[r["step"]] = r["loss"];
  for (const auto& r : read_jsonl(killed_dir / "metrics.jsonl"))
    if (r["type"] == "train") lb[r["step"]] = r["loss"];
  EXPECT_EQ(la.size(), 24u);
  EXPECT_EQ(la, lb);
}

// A damaged newest checkpoint (truncated weights; an edited state.json) is named and skipped, the
// run resumes from the newest one that verifies against its manifest, and the skipped one is
// replaced when the run passes its step again.
TEST_F(TrainerRun, DamagedLatestCheckpointFallsBackToTheNewestThatVerifies) {
  const std::vector<std::string> common = {"train.max_steps=6", "train.save_interval=3", "train.keep_last=3",
                                           "train.eval_at_start=false"};
  ASSERT_EQ(run(args("fb", common), "first"), 0) << log("first");
  const fs::path ck = dir_ / "fb/checkpoints";
  ASSERT_TRUE(fs::exists(ck / "step_3/manifest.json"));
  EXPECT_NO_THROW(verify_checkpoint((ck / "step_6").string()));
  const std::string good6 = read_file(ck / "step_6/model.safetensors");
  fs::resize_file(ck / "step_6/model.safetensors", fs::file_size(ck / "step_6/model.safetensors") - 100);
  auto resume = args("fb", common);
  resume.push_back("--resume");
  ASSERT_EQ(run(resume, "resumed"), 0) << log("resumed");
  EXPECT_THAT(log("resumed"), HasSubstr("warning: skipping checkpoint " + (ck / "step_6").string()));
  EXPECT_THAT(log("resumed"), HasSubstr("truncated"));
  EXPECT_THAT(log("resumed"), HasSubstr("resumed from " + (ck / "step_3").string() + " at step 3"));
  EXPECT_TRUE(read_file(ck / "step_6/model.safetensors") == good6) << "the re-run steps 4-6 should rebuild the same weights";
  EXPECT_NO_THROW(verify_checkpoint((ck / "step_6").string()));

  // "step": 999 in state.json: the checksum catches the edit; without a manifest the folder name does.
  const fs::path state = ck / "step_6/trainer_state/state.json";
  std::string text = read_file(state);
  text.replace(text.find("\"step\": 6"), 9, "\"step\": 999");
  std::ofstream(state, std::ios::trunc) << text;
  EXPECT_THROW(verify_checkpoint((ck / "step_6").string()), FormatError);
  fs::remove(ck / "step_6/manifest.json");
  ASSERT_EQ(run(resume, "edited"), 0) << log("edited");
  EXPECT_THAT(log("edited"), HasSubstr("step 999 does not match the folder step_6"));
  EXPECT_THAT(log("edited"), HasSubstr("resumed from " + (ck / "step_3").string()));
  const auto s = summary("edited");
  EXPECT_EQ(s["steps"].get<int64_t>(), 6);

  // Nothing that verifies: a clear error naming every checkpoint, exit 2.
  for (const char* step : {"step_3", "step_6"}) fs::resize_file(ck / step / "model.safetensors", 1000);
  ASSERT_EQ(run(resume, "none"), 2) << log("none");
  EXPECT_THAT(log("none"), HasSubstr("no checkpoint of this run can be resumed"));
}

TEST_F(TrainerRun, SigtermWritesACheckpointAndStops) {
  const pid_t pid = spawn(args("term", {"train.max_steps=100000", "train.eval_at_start=false"}), "term");
  const fs::path metrics = dir_ / "term/metrics.jsonl";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while ((!fs::exists(metrics) || fs::file_size(metrics) == 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 0) << log("term");
  const auto s = summary("term");
  ASSERT_FALSE(s.is_null()) << log("term");
  EXPECT_TRUE(s["interrupted"].get<bool>());
  const auto latest = latest_checkpoint((dir_ / "term").string());
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->step, s["steps"].get<int64_t>());
  EXPECT_GE(latest->step, 1);
  EXPECT_THAT(log("term"), HasSubstr("continue with --resume"));
}

TEST_F(TrainerRun, NanLossStopsAndKeepsTheLastGoodCheckpoint) {
  const int code = run(args("nan", {"train.max_steps=20", "train.save_interval=1", "train.lr=1e30", "train.warmup_steps=0",
                                    "train.eval_at_start=false"}),
                       "nan");
  EXPECT_EQ(code, 1) << log("nan");
  const std::string out = log("nan");
  EXPECT_THAT(out, HasSubstr("stopped without saving"));
  EXPECT_THAT(out, HasSubstr("Last good checkpoint: " + (dir_ / "nan/checkpoints/step_").string()));
  const auto latest = latest_checkpoint((dir_ / "nan").string());
  ASSERT_TRUE(latest);
  EXPECT_GE(latest->step, 1);
  EXPECT_LT(latest->step, 20);
  // The kept checkpoint holds finite weights.
  auto model = io::load_pretrained(latest->path);
  for (const auto& p : model->parameters()) EXPECT_TRUE(p.isfinite().all().item<bool>());
}

TEST_F(TrainerRun, TwoRanksSeeTheOneRankBatchAndOnlyRankZeroWrites) {
  // 2 ranks x 4 rows read exactly the rows of 1 rank x 8, so the first step's CE (a mean of
  // equal-sized means, averaged over ranks for the log) is the same.
  const std::vector<std::string> common = {"train.max_steps=2", "train.eval_at_start=false"};
  auto one = args("one", common);
  one.insert(one.end(), {"--set", "train.micro_batch_size=8"});
  ASSERT_EQ(run(one, "one"), 0) << log("one");
  auto two = args("two", common);
  two.insert(two.end(), {"--set", "train.micro_batch_size=4", "--nproc-per-node", "2"});
  ASSERT_EQ(run(two, "two"), 0) << log("two");
  EXPECT_THAT(log("two"), HasSubstr("[rank 0] step 2/2"));
  EXPECT_THAT(log("two"), ::testing::Not(HasSubstr("[rank 1] ")));  // rank 0 alone reports
  const auto a = read_jsonl(dir_ / "one/metrics.jsonl"), b = read_jsonl(dir_ / "two/metrics.jsonl");
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());  // rank 0 alone appends
  EXPECT_EQ(b[0]["step"], 1);
  EXPECT_NEAR(a[0]["task_ce"].get<double>(), b[0]["task_ce"].get<double>(), 1e-4);
  EXPECT_EQ(a[0]["tokens"], b[0]["tokens"]);
  EXPECT_TRUE(fs::exists(dir_ / "two/checkpoints/step_2/DONE"));
}

// README's line, with the torchrun of the project's pinned PyTorch (.venv): torchrun's agent serves
// the rendezvous store (TORCHELASTIC_USE_AGENT_STORE), our ranks join it as clients.
TEST_F(TrainerRun, TorchrunLaunchesTheTrainerAsDocumented) {
  const std::string torchrun = kSource + "/.venv/bin/torchrun";
  if (!fs::exists(torchrun)) GTEST_SKIP() << torchrun << " is missing: run scripts/setup.sh (the pinned torch wheel)";
  auto a = args("torchrun", {"train.max_steps=2", "train.eval_at_start=false", "train.micro_batch_size=4"});
  std::vector<std::string> cmd = {torchrun, "--nproc-per-node", "2", "--master-port", std::to_string(20000 + ::getpid() % 20000),
                                  "--no-python"};
  cmd.insert(cmd.end(), a.begin(), a.end());
  ASSERT_EQ(run(cmd, "torchrun"), 0) << log("torchrun");
  EXPECT_TRUE(fs::exists(dir_ / "torchrun/checkpoints/step_2/DONE")) << log("torchrun");
  EXPECT_FALSE(read_jsonl(dir_ / "torchrun/metrics.jsonl").empty()) << log("torchrun");
}

TEST_F(TrainerRun, TwoRankRunResumesAndAWorldSizeChangeIsExplained) {
  auto two = args("resume2", {"train.max_steps=2", "train.eval_at_start=false", "train.micro_batch_size=4"});
  two.insert(two.end(), {"--nproc-per-node", "2"});
  ASSERT_EQ(run(two, "first"), 0) << log("first");
  ASSERT_TRUE(fs::exists(dir_ / "resume2/checkpoints/step_2/DONE"));
  // Same world size: continues quietly from step 2.
  auto more = args("resume2", {"train.max_steps=3", "train.eval_at_start=false", "train.micro_batch_size=4"});
  more.insert(more.end(), {"--nproc-per-node", "2", "--resume"});
  ASSERT_EQ(run(more, "second"), 0) << log("second");
  EXPECT_THAT(log("second"), HasSubstr("resumed from"));
  EXPECT_THAT(log("second"), ::testing::Not(HasSubstr("rank(s), this run has")));
  EXPECT_TRUE(fs::exists(dir_ / "resume2/checkpoints/step_3/DONE"));
  // One rank now: it says what changes.
  auto one = args("resume2", {"train.max_steps=4", "train.eval_at_start=false", "train.micro_batch_size=4"});
  one.push_back("--resume");
  ASSERT_EQ(run(one, "third"), 0) << log("third");
  EXPECT_THAT(log("third"), HasSubstr("the checkpoint was written by 2 rank(s), this run has 1"));
  EXPECT_THAT(log("third"), HasSubstr("each optimizer step now sees 4 rows instead of 8"));
}

TEST_F(TrainerRun, WithoutDistillationTrainsPlainCrossEntropy) {
  // Drop the teacher side entirely (this is how a demo pretrains its own teacher).
  std::string cfg = read_file(kSource + "/configs/tiny-stories260k-w1.58.yaml");
  cfg.erase(cfg.find("distillation:"), cfg.find("# Data:") - cfg.find("distillation:"));
  cfg.erase(cfg.find("quantization:"), cfg.find("# Distillation:") - cfg.find("quantization:"));
  std::ofstream(dir_ / "ce.yaml") << cfg;
  auto a = args("ce", {"train.max_steps=6"});
  a[1] = (dir_ / "ce.yaml").string();
  ASSERT_EQ(run(a, "ce"), 0) << log("ce");
  for (const auto& r : read_jsonl(dir_ / "ce/metrics.jsonl")) {
    if (r["type"] != "train") continue;
    EXPECT_TRUE(r.contains("task_ce"));
    EXPECT_FALSE(r.contains("eakld"));
    EXPECT_NEAR(r["loss"].get<double>(), r["task_ce"].get<double>(), 1e-5);
  }
  EXPECT_FALSE(fs::exists(dir_ / "ce/checkpoints/step_6/quantization.yaml"));
  EXPECT_TRUE(fs::exists(dir_ / "ce/checkpoints/step_6/DONE"));
}

TEST_F(TrainerRun, CheckPrintsTheResolvedConfigAndBadConfigsExitTwo) {
  auto a = args("check");
  a.push_back("--check");
  ASSERT_EQ(run(a, "check"), 0) << log("check");
  const std::string out = log("check");
  EXPECT_THAT(out, HasSubstr("# quantization: preset w1_58a8kv8_embint4, expanded"));
  EXPECT_THAT(out, HasSubstr("weight_function: weight_quant_uniform_symmetric_clip_per_channel_int1_58"));
  EXPECT_THAT(out, HasSubstr("seq_len: 64"));
  EXPECT_FALSE(fs::exists(dir_ / "check"));  // nothing written
  auto bad = args("bad", {"train.lr_schedule=cosine"});
  ASSERT_EQ(run(bad, "bad"), 2);
  EXPECT_THAT(log("bad"), HasSubstr("edgerazor-train: error: "));
  EXPECT_THAT(log("bad"), HasSubstr("--set train.lr_schedule=cosine: unknown key"));
}

// ---- sharded data parallel (ZeRO, distributed.sharding) ---------------------------------------

// Largest |a - b| over the student weights of two checkpoints, and the largest |a|.
std::pair<double, double> weight_difference(const std::string& a_dir, const std::string& b_dir) {
  auto a = io::load_pretrained(a_dir), b = io::load_pretrained(b_dir);
  const auto pa = a->unique_named_parameters(), pb = b->unique_named_parameters();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    diff = std::max(diff, (pa[i].second - pb[i].second).abs().max().item<double>());
    scale = std::max(scale, pa[i].second.abs().max().item<double>());
  }
  return {diff, scale};
}

// Each stage on 2 ranks against the unsharded 2-rank run (same gradient checkpointing: stage 3
// implies it). fp32 and no clipping make the comparison exact: gradients are averaged by the same
// 2-term sums, AdamW is the same element update. (With clipping the global norm is summed in
// another order, and AdamW's first steps turn that round-off into visible differences.)
TEST_F(TrainerRun, ShardingStagesEqualTheUnshardedTwoRankRun) {
  const std::vector<std::string> common = {"train.max_steps=3", "train.eval_at_start=false", "train.micro_batch_size=4",
                                           "train.precision=fp32", "train.max_grad_norm=0"};
  const auto two_ranks = [&](const std::string& name, std::vector<std::string> extra) {
    extra.insert(extra.begin(), common.begin(), common.end());
    auto a = args(name, extra);
    a.insert(a.end(), {"--nproc-per-node", "2"});
    EXPECT_EQ(run(a, name), 0) << log(name);
    return (dir_ / name / "checkpoints/step_3").string();
  };
  const std::string plain = two_ranks("none", {});
  const std::string recomputed = two_ranks("none_ckpt", {"train.gradient_checkpointing=true"});
  for (const std::string stage : {"optimizer", "gradients", "parameters"}) {
    const std::string sharded = two_ranks(stage, {"distributed.sharding=" + stage});
    EXPECT_THAT(log(stage), HasSubstr("sharding " + stage + " over 2 rank(s)"));
    const auto [diff, scale] = weight_difference(stage == "parameters" ? recomputed : plain, sharded);
    RecordProperty("max_abs_diff_" + stage, std::to_string(diff));
    EXPECT_LE(diff, 1e-6 * scale) << stage;
  }
  // Every rank logs the memory model against its measured peak.
  bool memory = false;
  for (const auto& r : read_jsonl(dir_ / "parameters/metrics.jsonl"))
    if (r["type"] == "memory") {
      memory = true;
      EXPECT_GT(r["predicted_mib"].get<double>(), 0);
      EXPECT_GT(r["peak_rss_mib"].get<double>(), 0);
      EXPECT_TRUE(r.contains("predicted.adamw_moments"));
    }
  EXPECT_TRUE(memory);
  EXPECT_THAT(log("parameters"), HasSubstr("memory model per rank (sharding parameters)"));
}

// Resume from a sharded checkpoint equals the uninterrupted run bit for bit; the checkpoint also
// resumes on 1 rank (moments re-sharded), and the wrong kind of resume says what to do.
TEST_F(TrainerRun, ShardedCheckpointsResumeExactlyAndOnAnotherWorldSize) {
  for (const std::string stage : {"gradients", "parameters"}) {
    const auto a = [&](const std::string& name, int64_t steps, std::vector<std::string> extra = {}) {
      std::vector<std::string> sets = {"train.max_steps=" + std::to_string(steps), "train.eval_at_start=false",
                                       "train.micro_batch_size=4", "distributed.sharding=" + stage};
      sets.insert(sets.end(), extra.begin(), extra.end());
      return args(name, sets);
    };
    auto first = a("cut_" + stage, 2), more = a("cut_" + stage, 4), whole = a("whole_" + stage, 4);
    for (auto* v : {&first, &more, &whole}) v->insert(v->end(), {"--nproc-per-node", "2"});
    more.push_back("--resume");
    ASSERT_EQ(run(first, "first_" + stage), 0) << log("first_" + stage);
    EXPECT_TRUE(fs::exists(dir_ / ("cut_" + stage) / "checkpoints/step_2/trainer_state/zero/rank_1.safetensors"));
    EXPECT_FALSE(fs::exists(dir_ / ("cut_" + stage) / "checkpoints/step_2/trainer_state/optimizer.pt"));
    ASSERT_EQ(run(more, "more_" + stage), 0) << log("more_" + stage);
    ASSERT_EQ(run(whole, "whole_" + stage), 0) << log("whole_" + stage);
    const auto [diff, scale] = weight_difference((dir_ / ("cut_" + stage) / "checkpoints/step_4").string(),
                                                 (dir_ / ("whole_" + stage) / "checkpoints/step_4").string());
    EXPECT_EQ(diff, 0.0) << stage << ": resume must be exact (scale " << scale << ")";

    auto one = a("cut_" + stage, 5);
    one.push_back("--resume");
    ASSERT_EQ(run(one, "one_" + stage), 0) << log("one_" + stage);
    EXPECT_THAT(log("one_" + stage), HasSubstr("sharding " + stage + " over 1 rank(s)"));
    EXPECT_TRUE(fs::exists(dir_ / ("cut_" + stage) / "checkpoints/step_5/DONE"));
  }
  // A sharded checkpoint resumed unsharded, and the other way round: refused, naming the file.
  auto unsharded = args("cut_gradients", {"train.max_steps=6", "train.eval_at_start=false", "train.micro_batch_size=4"});
  unsharded.push_back("--resume");
  EXPECT_NE(run(unsharded, "unsharded"), 0);
  EXPECT_THAT(log("unsharded"), HasSubstr("resume it with a sharding stage"));
  auto plain = args("plain", {"train.max_steps=1", "train.eval_at_start=false"});
  ASSERT_EQ(run(plain, "plain"), 0) << log("plain");
  auto sharded = args("plain", {"train.max_steps=2", "train.eval_at_start=false", "distributed.sharding=optimizer"});
  sharded.push_back("--resume");
  EXPECT_NE(run(sharded, "sharded"), 0);
  EXPECT_THAT(log("sharded"), HasSubstr("resume it with sharding none"));
}

}  // namespace
}  // namespace edgerazor::train
