// Distributed data parallelism over real c10d (Gloo, loopback): collectives, gradient averaging
// equal to 1-process gradient accumulation, rank-0-only files, failures in bounded time.
// Workers are this binary re-executed (dist_worker_test.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "distributed/dist_worker.h"
#include "distributed/tiny_net.h"
#include "fixtures/temp_dir.h"
#include "edgerazor/core/error.h"
#include "edgerazor/distributed/grad_sync.h"
#include "edgerazor/distributed/launch.h"
#include "edgerazor/distributed/process_group.h"

extern char** environ;

namespace edgerazor::distributed::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("edgerazor_dist_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

using edgerazor_test::read_file;

// Runs this binary as `n` ranks of `scenario` through launch_local; returns (rc, output lines).
struct LaunchResult {
  int rc = -1;
  std::vector<std::string> lines;
  std::string text() const {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  }
};
LaunchResult launch_workers(const std::string& scenario, std::map<std::string, std::string> env, int nproc = 2) {
  LaunchResult result;
  std::mutex mutex;
  LaunchOptions options;
  env[kWorkerVar] = scenario;
  env["EDGERAZOR_DIST_TIMEOUT"] = "60";
  options.extra_env = env;
  options.on_line = [&](int rank, bool, const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex);
    result.lines.push_back(rank < 0 ? "launcher: " + line : "[rank " + std::to_string(rank) + "] " + line);
  };
  result.rc = launch_local(nproc, {self_executable()}, options);
  return result;
}

// ---------------------------------------------------------------------------------------------
TEST(DistEnv, ReadsTorchrunVariables) {
  const auto env = dist_env_from({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                                  {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29501"}, {"EDGERAZOR_DIST_TIMEOUT", "12.5"}});
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_world_size, 2);
  EXPECT_EQ(env.master_addr, "10.0.0.1");
  EXPECT_EQ(env.master_port, 29501);
  EXPECT_DOUBLE_EQ(env.timeout_s, 12.5);
  EXPECT_TRUE(env.distributed());
  EXPECT_EQ(describe(env), "rank 3 of 8 (local 1 of 2, master 10.0.0.1:29501)");

  const auto single = dist_env_from({});
  EXPECT_EQ(single.rank, 0);
  EXPECT_EQ(single.world_size, 1);
  EXPECT_FALSE(single.distributed());

  const auto one_node = dist_env_from({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}});
  EXPECT_EQ(one_node.local_rank, 1);  // defaults: one node
  EXPECT_EQ(one_node.local_world_size, 2);
}

TEST(DistEnv, BadValuesNameTheVariable) {
  auto message = [](const std::map<std::string, std::string>& env) {
    try {
      dist_env_from(env);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::map<std::string, std::string> ok = {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}};
  auto with = [&](const std::string& k, const std::string& v) {
    auto e = ok;
    e[k] = v;
    return e;
  };
  EXPECT_THAT(message(with("RANK", "2")), HasSubstr("RANK=2 is not below WORLD_SIZE=2"));
  EXPECT_THAT(message(with("RANK", "x")), HasSubstr("RANK=x: expected an integer"));
  EXPECT_THAT(message(with("WORLD_SIZE", "0")), HasSubstr("WORLD_SIZE=0"));
  EXPECT_THAT(message(with("MASTER_PORT", "70000")), HasSubstr("MASTER_PORT=70000"));
  EXPECT_THAT(message(with("LOCAL_RANK", "3")), HasSubstr("LOCAL_RANK=3 is not below LOCAL_WORLD_SIZE=2"));
  EXPECT_THAT(message(with("EDGERAZOR_DIST_TIMEOUT", "-1")), HasSubstr("EDGERAZOR_DIST_TIMEOUT=-1"));
  auto no_addr = ok;
  no_addr.erase("MASTER_ADDR");
  EXPECT_THAT(message(no_addr), HasSubstr("MASTER_ADDR is not set"));
  auto no_rank = ok;
  no_rank.erase("RANK");
  EXPECT_THAT(message(no_rank), HasSubstr("RANK is not set"));
}

TEST(ProcessGroup, OneProcessIsTheIdentity) {
  ProcessGroup pg(DistEnv{});
  EXPECT_EQ(pg.backend(), "none");
  EXPECT_EQ(pg.world_size(), 1);
  auto t = at::arange(5, at::kFloat);
  pg.all_reduce_sum(t);
  pg.all_reduce_mean(t);
  pg.broadcast(t, 0);
  pg.barrier();
  EXPECT_TRUE(at::equal(t, at::arange(5, at::kFloat)));
  EXPECT_TRUE(pg.any(true));
  EXPECT_FALSE(pg.any(false));
  bool ran = false;
  pg.rank0_only("x", [&] { ran = true; });
  EXPECT_TRUE(ran);
  EXPECT_THROW(pg.rank0_only("x", [] { throw std::runtime_error("boom"); }), std::runtime_error);

  auto p = at::ones({3}).requires_grad_(true);
  p.mutable_grad() = at::full({3}, 4.0f);
  GradientSynchronizer sync(pg, {p}, GradSyncOptions().overlap(true));
  sync.prepare_backward();
  sync.synchronize();
  EXPECT_TRUE(at::equal(p.grad(), at::full({3}, 4.0f)));
}

TEST(ProcessGroup, BadOptionsAreConfigErrors) {
  EXPECT_THROW(ProcessGroup(DistEnv{}, ProcessGroupOptions().device("tpu")), ConfigError);
  DistEnv two;
  two.world_size = 2;
  if (!has_nccl()) {
    try {
      ProcessGroup(two, ProcessGroupOptions().backend("nccl"));
      FAIL() << "nccl without NCCL must fail";
    } catch (const ConfigError& e) {
      EXPECT_THAT(e.what(), HasSubstr("built without NCCL"));
    }
  }
  EXPECT_THROW(ProcessGroup(two, ProcessGroupOptions().backend("mpi")), ConfigError);
}

// Two ranks through the launcher: every collective's result is checked exactly by the workers.
TEST(ProcessGroup, TwoRankCollectivesOverGloo) {
  ASSERT_TRUE(has_gloo());
  const auto dir = fresh_dir("collectives");
  const auto r = launch_workers("collectives", {{"EDGERAZOR_DIST_TEST_DIR", dir.string()}});
  ASSERT_EQ(r.rc, 0) << r.text();
  EXPECT_THAT(r.text(), HasSubstr("[rank 0] collectives ok rank 0"));
  EXPECT_THAT(r.text(), HasSubstr("[rank 1] collectives ok rank 1"));
  EXPECT_EQ(read_file(dir / "marker.txt"), "written by rank 0");  // only rank 0 ran the writer
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  EXPECT_THAT(files, ::testing::ElementsAre("marker.txt"));
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// 2 ranks x 4 rows with gradient averaging == 1 process with 2 micro-batches of 4 rows (2x
// accumulation), same initial weights (rank 1 starts from other weights and gets rank 0's).
class DataParallelTraining : public ::testing::TestWithParam<std::string> {};

TEST_P(DataParallelTraining, EqualsOneRankWithGradientAccumulation) {
  const std::string mode = GetParam();
  const auto dir = fresh_dir("train_" + mode);
  const auto r = launch_workers("train", {{"EDGERAZOR_DIST_TEST_DIR", dir.string()}, {"EDGERAZOR_DIST_TEST_MODE", mode}});
  ASSERT_EQ(r.rc, 0) << r.text();
  EXPECT_THAT(r.text(), HasSubstr("[rank 0] train ok rank 0"));
  EXPECT_THAT(r.text(), HasSubstr("[rank 1] train ok rank 1"));

  // Only rank 0 wrote, and nothing is left half-written.
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  ASSERT_THAT(files, ::testing::ElementsAre("weights.bin"));
  const std::string bytes = read_file(dir / "weights.bin");

  TinyNet reference = make_tiny_net(1);
  train_tiny(reference, {{0, 2, 4, 6}, {1, 3, 5, 7}}, kTinySteps, [](size_t) {}, [] {});
  const auto expected = flat_parameters(reference);
  ASSERT_EQ(bytes.size(), static_cast<size_t>(expected.numel()) * sizeof(float));
  const auto got = at::from_blob(const_cast<char*>(bytes.data()), {expected.numel()}, at::kFloat).clone();

  // Stated tolerance: 1e-6 relative to the largest weight (fp32 sums in another order).
  const double scale = expected.abs().max().item<double>();
  const double max_diff = (got - expected).abs().max().item<double>();
  std::ostringstream diff_text;
  diff_text << max_diff << " (scale " << scale << ")";
  RecordProperty("max_abs_diff", diff_text.str());
  EXPECT_LE(max_diff, 1e-6 * scale) << "max |dp - reference| = " << max_diff;
  TinyNet untrained = make_tiny_net(1);
  EXPECT_FALSE(at::equal(expected, flat_parameters(untrained))) << "training must have moved the weights";
  if (mode == "plain") EXPECT_EQ(max_diff, 0.0) << "2-rank averaging of 2 micro-batches is bit-exact";
  if (mode == "overlap") {
    EXPECT_THAT(r.text(), ::testing::Not(HasSubstr("launched_in_backward=0 ")));  // hooks did launch buckets
    EXPECT_THAT(r.text(), HasSubstr("relaunched=0"));
  }
  if (mode == "overlap_accum") EXPECT_THAT(r.text(), ::testing::Not(HasSubstr("relaunched=0")));
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Modes, DataParallelTraining,
                         ::testing::Values("plain", "overlap", "overlap_accum", "overlap_accum_last", "adapter"));

// ---------------------------------------------------------------------------------------------
// ZeRO (zero.h) on a tiny CausalLM with synthetic gradients that are the same on every rank: the
// average over ranks is exact, so 1 and 2 ranks must agree, and a sharded checkpoint must move
// between world sizes without changing a bit.
class ZeroSharding : public ::testing::TestWithParam<std::string> {
 protected:
  LaunchResult zero_run(int ranks, const fs::path& out, const std::string& load, int steps, bool prescale = false,
                        const std::string& max_norm = "1") {
    std::map<std::string, std::string> env = {{"EDGERAZOR_ZERO_STAGE", GetParam()},
                                              {"EDGERAZOR_ZERO_OUT", out.string()},
                                              {"EDGERAZOR_ZERO_STEPS", std::to_string(steps)},
                                              {"EDGERAZOR_ZERO_PRESCALE", prescale ? "1" : "0"},
                                              {"EDGERAZOR_ZERO_MAX_NORM", max_norm}};
    if (!load.empty()) env["EDGERAZOR_ZERO_LOAD"] = load;
    return launch_workers("zero", env, ranks);
  }
};

// clip_gradients folds torch's clip_grad_norm_ coefficient into step(): the weights must equal,
// bit for bit, those of gradients the worker clipped itself before handing them over (fp32:
// g * float(coef) either way), on 1 rank and on 2, and differ from an unclipped run's (the clip
// took effect); the worker checks that the measured norm is the gradients' norm.
TEST_P(ZeroSharding, ClippingFoldedIntoTheStepEqualsClippedGradients) {
  const auto dir = fresh_dir("zero_clip_" + GetParam());
  const auto unclipped = zero_run(1, dir / "unclipped", "", 2, false, "0");
  ASSERT_EQ(unclipped.rc, 0) << unclipped.text();
  for (int ranks : {1, 2}) {
    const std::string tag = std::to_string(ranks);
    const auto folded = zero_run(ranks, dir / ("folded" + tag), "", 2);
    const auto clipped = zero_run(ranks, dir / ("clipped" + tag), "", 2, true);
    ASSERT_EQ(folded.rc, 0) << folded.text();
    ASSERT_EQ(clipped.rc, 0) << clipped.text();
    EXPECT_THAT(folded.text(), HasSubstr("step 2 clipped by")) << "the synthetic gradients must be clipped";
    EXPECT_EQ(read_file(dir / ("folded" + tag) / "weights.bin"), read_file(dir / ("clipped" + tag) / "weights.bin"))
        << ranks << " rank(s)";
    EXPECT_NE(read_file(dir / ("folded" + tag) / "weights.bin"), read_file(dir / "unclipped/weights.bin"));
  }
  fs::remove_all(dir);
}

TEST_P(ZeroSharding, OneAndTwoRanksAgreeAndCheckpointsReshard) {
  const auto dir = fresh_dir("zero_" + GetParam());
  const auto a = zero_run(1, dir / "a", "", 2);  // 1 rank, 2 steps
  ASSERT_EQ(a.rc, 0) << a.text();
  const auto b = zero_run(2, dir / "b", (dir / "a").string(), 0);  // onto 2 ranks, saved again
  ASSERT_EQ(b.rc, 0) << b.text();
  EXPECT_THAT(b.text(), HasSubstr("[rank 1] zero ok rank 1 of 2, 2 adam steps"));
  EXPECT_TRUE(fs::exists(dir / "b/trainer_state/zero/rank_1.safetensors"));
  const auto c = zero_run(1, dir / "c", (dir / "b").string(), 0);  // back onto 1 rank
  ASSERT_EQ(c.rc, 0) << c.text();
  const std::string zero_file = "trainer_state/zero/rank_0.safetensors";
  EXPECT_EQ(read_file(dir / "a" / zero_file), read_file(dir / "c" / zero_file)) << "1 -> 2 -> 1 ranks changed the moments";
  EXPECT_EQ(read_file(dir / "a/weights.bin"), read_file(dir / "c/weights.bin"));

  // One more step from the same checkpoint on 1 rank and on 2 (re-sharded moments).
  const auto d1 = zero_run(1, dir / "d1", (dir / "a").string(), 1);
  const auto d2 = zero_run(2, dir / "d2", (dir / "a").string(), 1);
  ASSERT_EQ(d1.rc, 0) << d1.text();
  ASSERT_EQ(d2.rc, 0) << d2.text();
  const std::string w1 = read_file(dir / "d1/weights.bin"), w2 = read_file(dir / "d2/weights.bin");
  ASSERT_EQ(w1.size(), w2.size());
  ASSERT_NE(w1, read_file(dir / "a/weights.bin")) << "the step must move the weights";
  const auto t1 = at::from_blob(const_cast<char*>(w1.data()), {static_cast<int64_t>(w1.size() / 4)}, at::kFloat);
  const auto t2 = at::from_blob(const_cast<char*>(w2.data()), {static_cast<int64_t>(w2.size() / 4)}, at::kFloat);
  // Stated tolerance: the clipping norm is summed in another order (fp64), nothing else differs.
  EXPECT_LE((t1 - t2).abs().max().item<double>(), 1e-6 * t1.abs().max().item<double>());
  fs::remove_all(dir);
}

TEST_P(ZeroSharding, ALayoutOfAnotherModelIsRefusedNamingTheFile) {
  const auto dir = fresh_dir("zero_bad_" + GetParam());
  ASSERT_EQ(zero_run(1, dir / "a", "", 1).rc, 0);
  std::string layout = read_file(dir / "a/trainer_state/zero/layout.json");
  layout.replace(layout.find("\"numel\""), 8, "\"numelX\"");
  std::ofstream(dir / "a/trainer_state/zero/layout.json") << layout;
  const auto r = zero_run(2, dir / "b", (dir / "a").string(), 0);
  EXPECT_NE(r.rc, 0);
  EXPECT_THAT(r.text(), HasSubstr("layout.json"));
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Stages, ZeroSharding, ::testing::Values("optimizer", "gradients", "parameters"));

// The trainer's entry point: `tool --nproc-per-node 2 ARGS` re-executes itself as 2 workers
// without the flag; a worker (WORLD_SIZE set) or nproc 1 does not launch.
TEST(Launch, RelaunchAsWorkersDropsTheFlag) {
  const char* argv[] = {"ignored-argv0", "--nproc-per-node", "2", "--keep", "x"};
  std::vector<std::string> lines;
  std::mutex mutex;
  LaunchOptions options;
  options.extra_env = {{kWorkerVar, "relaunch"}};
  options.on_line = [&](int rank, bool, const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex);
    lines.push_back("[" + std::to_string(rank) + "] " + line);
  };
  const auto rc = relaunch_as_workers(2, 5, argv, "--nproc-per-node", options);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 0);
  EXPECT_THAT(lines, ::testing::Contains("[0] worker 0 of 2: --keep x"));
  EXPECT_THAT(lines, ::testing::Contains("[1] worker 1 of 2: --keep x"));
  EXPECT_FALSE(relaunch_as_workers(1, 5, argv).has_value());
  ::setenv("WORLD_SIZE", "2", 1);
  EXPECT_FALSE(relaunch_as_workers(2, 5, argv).has_value());
  ::unsetenv("WORLD_SIZE");
}

// ---------------------------------------------------------------------------------------------
// Failures: the ranks are spawned directly (not through the launcher, which would stop the
// survivor itself), with a short timeout.
pid_t spawn_rank(const std::string& scenario, int rank, int port, const fs::path& log, double timeout_s) {
  std::map<std::string, std::string> set = {{kWorkerVar, scenario},        {"RANK", std::to_string(rank)},
                                            {"WORLD_SIZE", "2"},          {"MASTER_ADDR", "127.0.0.1"},
                                            {"MASTER_PORT", std::to_string(port)},
                                            {"EDGERAZOR_DIST_TIMEOUT", std::to_string(timeout_s)}};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (set.count(entry.substr(0, entry.find('='))) == 0) env.push_back(entry);
  }
  for (const auto& [k, v] : set) env.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string exe = self_executable();
  char* argv[] = {const_cast<char*>(exe.c_str()), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0);
  return pid;
}

// Exit status, or -1 when the process was still running after `limit_s` (then it is killed).
int wait_bounded(pid_t pid, double limit_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The bound for "exits in bounded time": generous against a loaded CI machine, far below
// "hangs forever"; the worker's own timeout is 3 s.
constexpr double kBoundSeconds = 90;

TEST(Failures, SurvivorOfAKilledRankExitsWithAClearError) {
  const auto dir = fresh_dir("die");
  const int port = pick_free_port();
  const pid_t r0 = spawn_rank("die", 0, port, dir / "rank0.log", 3);
  const pid_t r1 = spawn_rank("die", 1, port, dir / "rank1.log", 3);
  const int s1 = wait_bounded(r1, kBoundSeconds);
  const int s0 = wait_bounded(r0, kBoundSeconds);
  ASSERT_NE(s1, -1);
  EXPECT_TRUE(WIFSIGNALED(s1) && WTERMSIG(s1) == SIGKILL) << read_file(dir / "rank1.log");
  ASSERT_NE(s0, -1) << "rank 0 did not exit after rank 1 died: " << read_file(dir / "rank0.log");
  EXPECT_TRUE(WIFEXITED(s0) && WEXITSTATUS(s0) == 1) << read_file(dir / "rank0.log");
  const std::string log = read_file(dir / "rank0.log");
  EXPECT_THAT(log, HasSubstr("failed on rank 0 of 2"));
  EXPECT_THAT(log, HasSubstr("Another rank probably exited or stopped responding"));
  fs::remove_all(dir);
}

TEST(Failures, SurvivorOfAHungRankTimesOut) {
  const auto dir = fresh_dir("hang");
  const int port = pick_free_port();
  const pid_t r0 = spawn_rank("hang", 0, port, dir / "rank0.log", 3);
  const pid_t r1 = spawn_rank("hang", 1, port, dir / "rank1.log", 3);
  const int s0 = wait_bounded(r0, kBoundSeconds);
  ::kill(r1, SIGKILL);
  ::waitpid(r1, nullptr, 0);
  const std::string log = read_file(dir / "rank0.log");
  ASSERT_NE(s0, -1) << "rank 0 hung with its peer: " << log;
  EXPECT_TRUE(WIFEXITED(s0) && WEXITSTATUS(s0) == 1) << log;
  EXPECT_THAT(log, HasSubstr("failed on rank 0 of 2"));
  EXPECT_THAT(log, HasSubstr("timeout 3 s"));
  fs::remove_all(dir);
}

TEST(Failures, RendezvousWithoutRankZeroTimesOut) {
  const auto dir = fresh_dir("alone");
  const pid_t r1 = spawn_rank("alone", 1, pick_free_port(), dir / "rank1.log", 2);
  const int s1 = wait_bounded(r1, kBoundSeconds);
  const std::string log = read_file(dir / "rank1.log");
  ASSERT_NE(s1, -1) << log;
  EXPECT_TRUE(WIFEXITED(s1) && WEXITSTATUS(s1) == 1) << log;
  EXPECT_THAT(log, HasSubstr("rendezvous failed on rank 1 of 2"));
  EXPECT_THAT(log, HasSubstr("MASTER_ADDR/MASTER_PORT/WORLD_SIZE"));
  fs::remove_all(dir);
}

TEST(Failures, RankZeroWithoutPeersTimesOut) {
  const auto dir = fresh_dir("alone0");
  const pid_t r0 = spawn_rank("alone", 0, pick_free_port(), dir / "rank0.log", 2);
  const int s0 = wait_bounded(r0, kBoundSeconds);
  const std::string log = read_file(dir / "rank0.log");
  ASSERT_NE(s0, -1) << log;
  EXPECT_TRUE(WIFEXITED(s0) && WEXITSTATUS(s0) == 1) << log;
  EXPECT_THAT(log, HasSubstr("rendezvous failed on rank 0 of 2"));
  EXPECT_THAT(log, HasSubstr("only 1 of 2 ranks joined within the timeout of 2 s"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgerazor::distributed::testing
