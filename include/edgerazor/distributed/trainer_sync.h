// Implements: C10dGradientSync, the train::GradientSync the trainer plugs in for data-parallel
// runs (a ProcessGroup + GradientSynchronizer behind the trainer's interface), and
// make_gradient_sync, which builds it from the environment (null for a single process).
//
//   // edgerazor-train, after relaunch_as_workers() (launch.h) returned nullopt:
//   auto sync = distributed::make_gradient_sync(cfg.distributed.backend, cfg.train.device);
//   options.gradient_sync = sync;          // null when WORLD_SIZE is unset or 1
//
// The first synchronize() builds the buckets for the parameter list it is given (and rebuilds
// them if a later call passes different tensors); call broadcast_parameters() once before the
// first step when ranks could start from different weights (random init); loading the same
// checkpoint or Hugging Face folder on every rank already gives identical weights.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "edgerazor/distributed/grad_sync.h"
#include "edgerazor/distributed/process_group.h"
#include "edgerazor/train/grad_sync.h"

namespace edgerazor::distributed {

class C10dGradientSync : public train::GradientSync {
 public:
  explicit C10dGradientSync(std::shared_ptr<ProcessGroup> group, const GradSyncOptions& options = {});
  ~C10dGradientSync() override;

  int rank() const override;
  int world_size() const override;
  void synchronize(const std::vector<at::Tensor>& parameters) override;  // .grad -> mean over ranks
  void average(std::vector<double>& values) override;                    // in place, fp64
  void barrier() override;

  // Beyond train::GradientSync (see the integration notes in README "Multi-GPU and multi-node"):
  void broadcast_parameters(const std::vector<at::Tensor>& parameters);  // rank 0's values everywhere
  bool any(bool flag);  // agree on stop requests / non-finite values: true everywhere if true anywhere
  void rank0_only(const std::string& what, const std::function<void()>& fn);  // see ProcessGroup
  std::vector<std::string> gather_to_rank0(const std::string& value);          // see ProcessGroup
  const std::string& device() const;  // "cpu" or "cuda:LOCAL_RANK": where this rank must compute
  ProcessGroup& group();
  const GradSyncStats* stats() const;  // null before the first synchronize()

 private:
  std::shared_ptr<ProcessGroup> group_;
  GradSyncOptions options_;
  std::vector<at::Tensor> params_;  // the list the synchronizer was built for
  std::unique_ptr<GradientSynchronizer> synchronizer_;
};

// Joins the job described by the environment (RANK, WORLD_SIZE, ...): returns null when this is
// a single process (WORLD_SIZE unset or 1), else a ready C10dGradientSync. backend:
// auto|gloo|nccl; device: the trainer's cpu|cuda|cuda:N; timeout_s: 0 = EDGERAZOR_DIST_TIMEOUT
// or 600 s. Throws ConfigError (bad variables or choices) or DistributedError (rendezvous).
std::shared_ptr<C10dGradientSync> make_gradient_sync(const std::string& backend = "auto",
                                                     const std::string& device = "cpu", double timeout_s = 0,
                                                     const GradSyncOptions& options = {});

}  // namespace edgerazor::distributed
