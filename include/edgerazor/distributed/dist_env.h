// Implements: DistEnv, the rank layout a process reads from the torchrun-style environment, and
// DistributedError, the one error type of the distributed layer. Torch-free.
//
//   RANK              global rank of this process, 0 <= RANK < WORLD_SIZE
//   WORLD_SIZE        number of processes in the job (all nodes)
//   LOCAL_RANK        rank on this node; picks the GPU (cuda:LOCAL_RANK) on CUDA builds
//   LOCAL_WORLD_SIZE  processes on this node
//   MASTER_ADDR       host of rank 0, which serves the TCP rendezvous store
//   MASTER_PORT       that store's TCP port
//   EDGERAZOR_DIST_TIMEOUT  seconds a collective or the rendezvous may wait for the other ranks
//
// None set: a single process (rank 0 of 1). WORLD_SIZE > 1 needs RANK, MASTER_ADDR and
// MASTER_PORT; LOCAL_RANK defaults to RANK and LOCAL_WORLD_SIZE to WORLD_SIZE (one node).
#pragma once

#include <map>
#include <stdexcept>
#include <string>

namespace edgerazor::distributed {

// A collective, the rendezvous or a peer failed (a rank died, hung past the timeout, or the
// network broke). The message says which operation, which rank, and what to look at.
class DistributedError : public std::runtime_error {
 public:
  explicit DistributedError(const std::string& message) : std::runtime_error(message) {}
};

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double timeout_s = 0;   // from EDGERAZOR_DIST_TIMEOUT; 0 = not set (the options decide)

  bool distributed() const { return world_size > 1; }
  bool is_rank0() const { return rank == 0; }
};

// Reads the variables above from `env` (tests) or the process environment. A malformed or
// inconsistent value is a ConfigError naming the variable ("RANK=3 is not below WORLD_SIZE=2").
DistEnv dist_env_from(const std::map<std::string, std::string>& env);
DistEnv read_dist_env();

// "rank 1 of 2 (local 1 of 2, master 127.0.0.1:29500)", for messages.
std::string describe(const DistEnv& env);

}  // namespace edgerazor::distributed
