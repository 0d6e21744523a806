// Implements: ProcessGroup, one process's membership in a data-parallel job over LibTorch's c10d
// (DESIGN.md "Distributed = real c10d"): rendezvous through a c10d::TCPStore served by rank 0
// at MASTER_ADDR:MASTER_PORT, then ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA
// tensors, CUDA builds of LibTorch only). With WORLD_SIZE 1 nothing is opened and every
// collective is the identity, so a trainer calls the same code with one process or many.
//
// Failure model: every collective and the rendezvous wait at most `timeout_s` for the other
// ranks. A rank that dies closes its sockets, so the others fail at their next collective at
// once; a rank that hangs makes them fail when the timeout expires. Either way they throw
// DistributedError ("all_reduce 'gradients' failed on rank 0 of 2 ...: <cause>") instead of
// hanging, and a tool maps it to exit code 1.
//
// Gloo network interface: GLOO_SOCKET_IFNAME when set (as in PyTorch); else loopback when
// MASTER_ADDR is a loopback address; else the local address the kernel routes to MASTER_ADDR.
#pragma once

#include <ATen/core/ATen_fwd.h>
#include <torch/arg.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "edgerazor/distributed/dist_env.h"

namespace edgerazor::distributed {

constexpr double kDefaultTimeoutSeconds = 600;

struct ProcessGroupOptions {
  TORCH_ARG(std::string, backend) = "auto";  // auto (nccl for CUDA devices, else gloo) | gloo | nccl
  TORCH_ARG(std::string, device) = "cpu";    // cpu | cuda (-> cuda:LOCAL_RANK) | cuda:N | auto
  // Seconds a collective or the rendezvous waits for the other ranks; 0 takes
  // EDGERAZOR_DIST_TIMEOUT from the environment, else kDefaultTimeoutSeconds.
  TORCH_ARG(double, timeout_s) = 0;
};

// true when this LibTorch build has ProcessGroupGloo / ProcessGroupNCCL compiled in.
bool has_gloo();
bool has_nccl();

// Starts the named backend ("gloo" or "nccl") for a one-rank group on `device` (an in-process
// store, no sockets to peers), runs one all_reduce on it and shuts it down: proves the backend is
// in this binary and usable on this machine. Throws ConfigError when the backend is not built in
// ("... built without ..."), else DistributedError carrying the backend's own error (e.g. CUDA's
// "no CUDA-capable device" on a machine without a GPU).
void probe_backend(const std::string& backend, const std::string& device);

// An asynchronous collective in flight; wait() throws DistributedError on failure.
class PendingCollective {
 public:
  PendingCollective();
  PendingCollective(PendingCollective&&) noexcept;
  PendingCollective& operator=(PendingCollective&&) noexcept;
  ~PendingCollective();
  void wait();
  bool valid() const { return state_ != nullptr; }

  struct State;
  explicit PendingCollective(std::unique_ptr<State> state);

 private:
  std::unique_ptr<State> state_;
};

class ProcessGroup {
 public:
  // Joins the job `env` describes (blocking until every rank has arrived, at most timeout_s).
  // Throws ConfigError for a bad backend/device choice, DistributedError when the rendezvous fails.
  explicit ProcessGroup(const DistEnv& env, const ProcessGroupOptions& options = {});
  // From the process environment (read_dist_env()).
  explicit ProcessGroup(const ProcessGroupOptions& options = {});
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int world_size() const;
  int local_rank() const;
  bool is_rank0() const { return rank() == 0; }
  bool distributed() const { return world_size() > 1; }
  const DistEnv& env() const;
  const std::string& backend() const;  // "gloo", "nccl", or "none" (one process)
  const std::string& device() const;   // where collective tensors must live: "cpu" or "cuda:N"
  double timeout_s() const;

  // In place, on every rank. `what` names the operation in error messages.
  void all_reduce_sum(at::Tensor& tensor, const std::string& what = "all_reduce");
  void all_reduce_mean(at::Tensor& tensor, const std::string& what = "all_reduce");
  void all_reduce_max(at::Tensor& tensor, const std::string& what = "all_reduce");
  PendingCollective all_reduce_sum_async(at::Tensor& tensor, const std::string& what = "all_reduce");
  void broadcast(at::Tensor& tensor, int root = 0, const std::string& what = "broadcast");
  // Sharded data parallel (zero.h). `full` has world_size() * shard.numel() elements, contiguous,
  // rank r's part at [r * n, (r + 1) * n). all_gather: every rank's `shard` lands in its part of
  // `full` on every rank. reduce_scatter: the sum over ranks of each rank's part of `full` lands in
  // that rank's `shard`. One process: a copy (or nothing when they alias).
  PendingCollective all_gather_async(at::Tensor& full, at::Tensor& shard, const std::string& what = "all_gather");
  void all_gather(at::Tensor& full, at::Tensor& shard, const std::string& what = "all_gather");
  void reduce_scatter_sum(at::Tensor& shard, at::Tensor& full, const std::string& what = "reduce_scatter");
  void barrier(const std::string& what = "barrier");

  // true on every rank when `flag` is true on any rank (stop signals, non-finite losses).
  bool any(bool flag, const std::string& what = "any");

  // Rank 0 gets every rank's `value` (index = rank; e.g. per-rank data-loader states for a
  // checkpoint only rank 0 writes); the other ranks get an empty vector. Through the store, so
  // values of any size and content. Collective.
  std::vector<std::string> gather_to_rank0(const std::string& value, const std::string& what = "gather");

  // Runs `fn` on rank 0 only (checkpoints, logs, exports), then every rank learns whether it
  // worked: rank 0 rethrows its own exception; the others throw DistributedError
  // "rank 0 failed during <what>: <its message>". Collective: every rank must call it.
  void rank0_only(const std::string& what, const std::function<void()>& fn);

  struct State;  // implementation detail (c10d store and backend)

 private:
  std::unique_ptr<State> state_;
};

}  // namespace edgerazor::distributed
