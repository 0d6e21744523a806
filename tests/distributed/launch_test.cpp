// launch_local: rank variables, "[rank N]" prefixes, failure propagation (SIGTERM, then SIGKILL),
// a command that cannot run, SIGTERM forwarding, remove_option.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "edgerazor/core/error.h"
#include "edgerazor/distributed/launch.h"
#include "fixtures/test_paths.h"

namespace edgerazor::distributed {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

struct Captured {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> out, err;  // "[rank N] line" / launcher lines as "launcher: ..."
  LaunchOptions options() {
    LaunchOptions o;
    o.on_line = [this](int rank, bool is_stderr, const std::string& line) {
      std::lock_guard<std::mutex> lock(mutex);
      const std::string text = rank < 0 ? "launcher: " + line : "[rank " + std::to_string(rank) + "] " + line;
      (is_stderr ? err : out).push_back(text);
      changed.notify_all();
    };
    return o;
  }
  std::string all() {
    std::lock_guard<std::mutex> lock(mutex);
    std::string s;
    for (const auto& l : out) s += l + "\n";
    for (const auto& l : err) s += l + "\n";
    return s;
  }
};

TEST(Launch, SetsRankVariablesAndPrefixesEachLine) {
  Captured c;
  const int rc = launch_local(
      3,
      {"sh", "-c",
       "echo vars $RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $GROUP_RANK $MASTER_ADDR; echo port $MASTER_PORT; "
       "echo to-stderr >&2; printf no-newline"},
      c.options());
  EXPECT_EQ(rc, 0) << c.all();
  for (int r = 0; r < 3; ++r) {
    const std::string p = "[rank " + std::to_string(r) + "] ";
    EXPECT_THAT(c.out, Contains(p + "vars " + std::to_string(r) + " 3 " + std::to_string(r) + " 3 0 127.0.0.1"));
    EXPECT_THAT(c.out, Contains(p + "no-newline"));
    EXPECT_THAT(c.err, Contains(p + "to-stderr"));
  }
  std::set<std::string> ports;
  for (const auto& l : c.out)
    if (l.find("] port ") != std::string::npos) ports.insert(l.substr(l.find("] port ") + 7));
  ASSERT_EQ(ports.size(), 1u) << "every rank sees the same MASTER_PORT";
  EXPECT_GT(std::stoi(*ports.begin()), 0);
}

TEST(Launch, MultiNodeRanksAndExtraEnv) {
  Captured c;
  auto o = c.options();
  o.nnodes = 2;
  o.node_rank = 1;
  o.master_addr = "10.1.2.3";
  o.master_port = 29555;
  o.extra_env = {{"EXTRA", "yes"}};
  EXPECT_EQ(launch_local(2, {"sh", "-c", "echo $RANK/$WORLD_SIZE $LOCAL_RANK $GROUP_RANK $MASTER_ADDR:$MASTER_PORT $EXTRA"}, o), 0);
  EXPECT_THAT(c.out, Contains("[rank 2] 2/4 0 1 10.1.2.3:29555 yes"));
  EXPECT_THAT(c.out, Contains("[rank 3] 3/4 1 1 10.1.2.3:29555 yes"));
}

TEST(Launch, AFailingRankStopsTheOthersAndItsCodeIsReturned) {
  Captured c;
  const int rc = launch_local(
      3, {"sh", "-c", "if [ $RANK = 1 ]; then sleep 0.2; echo failing; exit 3; fi; trap 'echo stopped; exit 0' TERM; "
                      "while :; do sleep 0.05; done"},
      c.options());
  EXPECT_EQ(rc, 3) << c.all();
  EXPECT_THAT(c.out, Contains("[rank 1] failing"));
  EXPECT_THAT(c.out, Contains("[rank 0] stopped"));
  EXPECT_THAT(c.out, Contains("[rank 2] stopped"));
  EXPECT_THAT(c.all(), HasSubstr("launcher: rank 1 (pid "));
  EXPECT_THAT(c.all(), HasSubstr("exited with code 3; stopping the other ranks"));
}

TEST(Launch, RanksIgnoringSigtermAreKilled) {
  Captured c;
  auto o = c.options();
  o.kill_grace_s = 0.3;
  // The ignored SIGTERM is inherited by the loop's sleeps, so only SIGKILL ends rank 0. Rank 1
  // fails only once rank 0 has installed its trap (a marker file), else a loaded machine can
  // deliver SIGTERM before the trap and rank 0 dies without needing SIGKILL.
  const std::string marker = "/tmp/er_launch_trap_" + std::to_string(::getpid());
  std::remove(marker.c_str());
  const int rc = launch_local(2, {"sh", "-c", "if [ $RANK = 1 ]; then while [ ! -f " + marker +
                                                  " ]; do sleep 0.01; done; exit 4; fi; trap '' TERM; touch " +
                                                  marker + "; while :; do sleep 0.05; done"}, o);
  std::remove(marker.c_str());
  EXPECT_EQ(rc, 4) << c.all();
  EXPECT_THAT(c.all(), HasSubstr("sending SIGKILL"));
}

TEST(Launch, ACrashIsReportedAs128PlusSignal) {
  Captured c;
  EXPECT_EQ(launch_local(1, {"sh", "-c", "kill -SEGV $$"}, c.options()), 128 + SIGSEGV);
  EXPECT_THAT(c.all(), HasSubstr("killed by signal 11"));
}

TEST(Launch, ACommandThatCannotRunExits127) {
  Captured c;
  EXPECT_EQ(launch_local(2, {"/nonexistent/edgerazor-no-such-tool"}, c.options()), 127);
  EXPECT_THAT(c.all(), HasSubstr("cannot execute '/nonexistent/edgerazor-no-such-tool'"));
}

TEST(Launch, SigtermToTheLauncherIsForwarded) {
  Captured c;
  int rc = -1;
  std::thread launcher([&] {
    rc = launch_local(2, {"sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"},
                      c.options());
  });
  {
    std::unique_lock<std::mutex> lock(c.mutex);
    ASSERT_TRUE(c.changed.wait_for(lock, std::chrono::seconds(60), [&] {
      return std::count_if(c.out.begin(), c.out.end(), [](const std::string& l) { return l.find("ready") != std::string::npos; }) == 2;
    }));
  }
  ::kill(::getpid(), SIGTERM);  // the launcher's handler is installed while it runs
  launcher.join();
  EXPECT_EQ(rc, 128 + SIGTERM);
  EXPECT_THAT(c.out, Contains("[rank 0] got TERM"));
  EXPECT_THAT(c.out, Contains("[rank 1] got TERM"));
}

TEST(Launch, ASecondSignalKillsRanksThatIgnoreTheFirst) {
  Captured c;
  int rc = -1;
  std::thread launcher([&] {
    rc = launch_local(2, {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"}, c.options());
  });
  auto wait_for = [&](const std::string& text, size_t count) {
    std::unique_lock<std::mutex> lock(c.mutex);
    return c.changed.wait_for(lock, std::chrono::seconds(60), [&] {
      size_t n = 0;
      for (const auto* v : {&c.out, &c.err})
        n += std::count_if(v->begin(), v->end(), [&](const std::string& l) { return l.find(text) != std::string::npos; });
      return n >= count;
    });
  };
  ASSERT_TRUE(wait_for("ready", 2));
  ::kill(::getpid(), SIGTERM);
  ASSERT_TRUE(wait_for("forwarding it to the ranks (send it again to kill them)", 1));
  ::kill(::getpid(), SIGTERM);
  launcher.join();
  EXPECT_EQ(rc, 128 + SIGTERM);
  EXPECT_THAT(c.all(), HasSubstr("received Terminated a second time; killing the ranks (SIGKILL)"));
}

// A signal that arrives while the ranks are being stopped after a failure says so (no "again":
// the launcher got no signal before), and kills them at once.
TEST(Launch, ASignalWhileStoppingAfterAFailureKillsWithAClearMessage) {
  Captured c;
  int rc = -1;
  auto o = c.options();
  o.kill_grace_s = 60;
  std::thread launcher([&] {
    rc = launch_local(2, {"sh", "-c", "if [ $RANK = 1 ]; then sleep 0.3; exit 5; fi; trap '' TERM; echo ready; "
                                      "while :; do sleep 0.05; done"}, o);
  });
  {
    std::unique_lock<std::mutex> lock(c.mutex);
    ASSERT_TRUE(c.changed.wait_for(lock, std::chrono::seconds(60), [&] {
      return std::any_of(c.err.begin(), c.err.end(), [](const std::string& l) { return l.find("stopping the other ranks") != std::string::npos; });
    }));
  }
  ::kill(::getpid(), SIGTERM);
  launcher.join();
  EXPECT_EQ(rc, 5) << c.all();  // the failing rank's code, not the signal's
  EXPECT_THAT(c.all(), HasSubstr("received Terminated while stopping the ranks after a failure; killing them (SIGKILL)"));
  EXPECT_THAT(c.all(), ::testing::Not(HasSubstr("again")));
}

TEST(Launch, BadArgumentsAreConfigErrors) {
  EXPECT_THROW(launch_local(0, {"true"}), ConfigError);
  EXPECT_THROW(launch_local(1, {}), ConfigError);
  LaunchOptions o;
  o.nnodes = 2;
  EXPECT_THROW(launch_local(1, {"true"}, o), ConfigError);  // no master port
  o.master_port = 29500;
  o.node_rank = 2;
  EXPECT_THROW(launch_local(1, {"true"}, o), ConfigError);
}

TEST(Launch, RemoveOption) {
  const std::vector<std::string> args = {"cfg.yaml", "--nproc-per-node", "2", "--set", "a=1", "--nproc-per-node=4", "--", "--nproc-per-node", "9"};
  EXPECT_EQ(remove_option(args, "--nproc-per-node"),
            (std::vector<std::string>{"cfg.yaml", "--set", "a=1", "--", "--nproc-per-node", "9"}));
  EXPECT_FALSE(self_executable().empty());
  const int port = pick_free_port();
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

}  // namespace
}  // namespace edgerazor::distributed

namespace edgerazor::distributed {
namespace {

std::string run_capture(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  char buf[512];
  while (std::fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  const int status = ::pclose(pipe);
  return out + "rc=" + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

TEST(SlurmWrapper, MapsSlurmVariablesToTorchrunOnes) {
  const std::string script = std::string(EDGERAZOR_SOURCE_DIR) + "/scripts/slurm_launch.sh";
  const std::string print = " sh -c 'echo $RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $MASTER_ADDR $MASTER_PORT'";
  // Third node of "4(x2),3,1": 3 local tasks; first host of a bracketed node list.
  EXPECT_EQ(run_capture("env -i PATH=/usr/bin:/bin SLURM_PROCID=9 SLURM_NTASKS=12 SLURM_LOCALID=1 SLURM_NODEID=2 "
                        "SLURM_TASKS_PER_NODE='4(x2),3,1' SLURM_JOB_NODELIST='gpu-[01-03,07],cpu5' SLURM_JOB_ID=123456 " +
                        script + print),
            "9 12 1 3 gpu-01 23456\nrc=0");
  EXPECT_EQ(run_capture("env -i PATH=/usr/bin:/bin SLURM_PROCID=1 SLURM_NTASKS=2 SLURM_LOCALID=1 SLURM_NODEID=0 "
                        "SLURM_TASKS_PER_NODE=2 SLURM_JOB_NODELIST=node7 MASTER_ADDR=10.0.0.5 MASTER_PORT=29400 " +
                        script + print),
            "1 2 1 2 10.0.0.5 29400\nrc=0");
  EXPECT_EQ(run_capture("env -i PATH=/usr/bin:/bin " + script + " true 2>&1"),
            "slurm_launch.sh: SLURM_PROCID/SLURM_NTASKS are not set; run it under srun\nrc=2");
}

}  // namespace
}  // namespace edgerazor::distributed
