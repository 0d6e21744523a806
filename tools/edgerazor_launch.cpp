// edgerazor-launch: start N local copies of a command as one data-parallel job (torchrun-style).
//
//   edgerazor-launch --nproc-per-node 2 -- edgerazor-train configs/x.yaml
//   edgerazor-launch --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --master-port 29500 \
//                    --nproc-per-node 8 -- edgerazor-train configs/x.yaml      # on each node
//
// Each child gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR,
// MASTER_PORT; its output comes back line by line as "[rank N] ...". When one child fails the
// others are stopped and the launcher exits with the failing child's code.
#include <CLI/CLI.hpp>

#include "edgerazor/core/cli.h"
#include "tool_flags.h"
#include "edgerazor/core/error.h"
#include "edgerazor/distributed/launch.h"

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-launch", [&] {
    int nproc = 1;
    double timeout_s = 0;
    edgerazor::distributed::LaunchOptions options;
    CLI::App app{"edgerazor-launch: run a command as N data-parallel ranks on this node"};
    app.add_option("--nproc-per-node", nproc, "processes to start on this node")->check(edgerazor::cli::kPositive);
    app.add_option("--nnodes", options.nnodes, "nodes in the job")->check(edgerazor::cli::kPositive);
    app.add_option("--node-rank", options.node_rank, "this node's index, 0 .. nnodes-1")->check(edgerazor::cli::kNonNegative);
    app.add_option("--master-addr", options.master_addr, "address of node 0 (rank 0 serves the rendezvous there)");
    app.add_option("--master-port", options.master_port, "TCP port of the rendezvous (default: a free port; required with --nnodes > 1)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--kill-grace", options.kill_grace_s, "seconds between SIGTERM and SIGKILL when stopping ranks")
        ->check(edgerazor::cli::kNonNegative);
    app.add_option("--timeout", timeout_s, "collective/rendezvous timeout in seconds (sets EDGERAZOR_DIST_TIMEOUT)")
        ->check(edgerazor::cli::kPositive);
    app.prefix_command();  // the first positional argument (or "--") starts the command
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    std::vector<std::string> command = app.remaining();
    if (!command.empty() && command.front() == "--") command.erase(command.begin());
    if (command.empty()) throw edgerazor::ConfigError("", 0, 0, "", "no command given (edgerazor-launch [options] -- CMD ARGS...)");
    if (timeout_s > 0) options.extra_env["EDGERAZOR_DIST_TIMEOUT"] = std::to_string(timeout_s);
    return edgerazor::distributed::launch_local(nproc, command, options);
  });
}
