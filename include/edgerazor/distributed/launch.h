// Implements: launch_local, the torchrun-style local launcher behind `edgerazor-launch` and
// `edgerazor-train --nproc-per-node N`, and small helpers for tools that re-execute themselves
// as workers. Torch-free.
//
// launch_local starts nproc_per_node copies of argv, each with
//   RANK = node_rank * nproc_per_node + LOCAL_RANK, WORLD_SIZE = nnodes * nproc_per_node,
//   LOCAL_RANK, LOCAL_WORLD_SIZE = nproc_per_node, GROUP_RANK = node_rank, MASTER_ADDR,
//   MASTER_PORT (a free port when 0 and nnodes == 1), and OMP_NUM_THREADS = cores / nproc when
//   neither OMP_NUM_THREADS nor EDGERAZOR_NUM_THREADS is set,
// forwards their stdout/stderr line by line as "[rank N] <line>", and returns 0 when every
// child exits with 0. When a child fails, the launcher sends SIGTERM to the others, SIGKILL
// after kill_grace_s, and returns the first failure's exit code (128 + signal for a signal).
// SIGINT/SIGTERM sent to the launcher are forwarded to every child (each runs in its own process
// group, so a terminal's Ctrl-C reaches the workers once, through the launcher) and the launcher
// waits for them without a deadline (a trainer checkpoints first); a second signal SIGKILLs them. Children get
// SIGTERM if the launcher dies (PR_SET_PDEATHSIG) and read stdin from /dev/null.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace edgerazor::distributed {

struct LaunchOptions {
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;       // 0: a free local port (single node only)
  double kill_grace_s = 10;  // SIGTERM -> SIGKILL delay when stopping the other ranks
  std::map<std::string, std::string> extra_env;  // set in every child, after the rank variables
  // Receives every child line (without '\n') and the launcher's own messages (rank -1).
  // Default: "[rank N] line" to stdout/stderr, "edgerazor-launch: ..." to stderr.
  std::function<void(int rank, bool is_stderr, const std::string& line)> on_line;
};

// Blocks until every child has exited. Throws ConfigError for bad arguments (nproc < 1, empty
// argv, node_rank >= nnodes, nnodes > 1 without a master_port). A command that cannot be
// executed makes that child exit with 127 and a message.
int launch_local(int nproc_per_node, const std::vector<std::string>& argv, const LaunchOptions& options = {});

// For tools with --nproc-per-node N: when N > 1 and this process is not already a worker
// (WORLD_SIZE is not in the environment), runs launch_local(N, [this executable] + argv[1:]
// without `flag`) and returns its exit code; otherwise returns nullopt and the caller goes on as
// a single process or as the worker the environment describes.
std::optional<int> relaunch_as_workers(int nproc_per_node, int argc, const char* const* argv,
                                       const std::string& flag = "--nproc-per-node",
                                       const LaunchOptions& options = {});

// A TCP port that is free on every local interface right now (the OS picks it).
int pick_free_port();

// Absolute path of the running executable (/proc/self/exe), for re-executing oneself as a worker.
std::string self_executable();

// args without "--flag VALUE" and "--flag=VALUE" (e.g. --nproc-per-node, so workers do not launch again).
std::vector<std::string> remove_option(const std::vector<std::string>& args, const std::string& flag);

}  // namespace edgerazor::distributed
