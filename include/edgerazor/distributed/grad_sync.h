// Implements: GradientSynchronizer, data-parallel gradient averaging over a ProcessGroup, and
// broadcast_tensors, which makes every rank start from rank 0's parameters.
//
// Gradients are averaged in flat buckets (default 25 MB, DDP's size): each bucket's gradients
// are copied into one contiguous buffer, summed across ranks with one c10d all_reduce, divided
// by the world size and copied back. Buckets hold parameters in reverse registration order, the
// order backward produces their gradients.
//
// Overlap (options.overlap): post-hooks on each parameter's gradient accumulator launch a
// bucket's all_reduce as soon as its last gradient is accumulated, in bucket order, so
// communication runs while backward computes the rest. It stays exact when the assumption
// "each gradient is produced once after prepare_backward()" fails (gradient accumulation over
// micro-batches, a chunked loss that backpropagates into lm_head per chunk): a bucket whose
// gradient changed after its launch is reduced again in synchronize(), agreed by all ranks.
//
// A parameter without a gradient on every rank keeps an undefined grad (the optimizer skips it);
// one that has a gradient on some ranks only gets the average with zeros for the others.
//
// Use (every rank, same parameter order):
//   distributed::GradientSynchronizer sync(group, model->parameters());
//   sync.broadcast_parameters();            // once, before training: rank 0's weights everywhere
//   loop: zero_grad; [sync.prepare_backward() before the last micro-batch's backward]
//         backward(s); sync.synchronize();  // grads now averaged; then clip and step
#pragma once

#include <ATen/core/ATen_fwd.h>
#include <torch/arg.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "edgerazor/distributed/process_group.h"

namespace edgerazor::distributed {

struct GradSyncOptions {
  TORCH_ARG(int64_t, bucket_bytes) = 25 * 1024 * 1024;  // gradient bytes per all_reduce
  TORCH_ARG(bool, overlap) = false;  // launch buckets from autograd hooks during backward
};

struct GradSyncStats {
  int64_t buckets = 0;             // buckets per synchronize()
  int64_t bytes = 0;               // gradient bytes reduced per synchronize()
  int64_t launched_in_backward = 0;  // last synchronize(): buckets started by hooks (overlap)
  int64_t relaunched = 0;          // last synchronize(): buckets reduced twice (grad changed after launch)
  double wait_seconds = 0;         // last synchronize(): wall time spent inside it
};

class GradientSynchronizer {
 public:
  // Checks that every rank passes parameters of the same shapes and dtypes (DistributedError
  // naming this rank's count otherwise). Parameters without requires_grad are ignored.
  GradientSynchronizer(ProcessGroup& group, std::vector<at::Tensor> parameters,
                       const GradSyncOptions& options = {});
  ~GradientSynchronizer();
  GradientSynchronizer(const GradientSynchronizer&) = delete;
  GradientSynchronizer& operator=(const GradientSynchronizer&) = delete;

  // Copies rank 0's parameter values to every rank (collective).
  void broadcast_parameters();
  // Overlap mode: arm the hooks for the next backward (call before the last micro-batch's
  // backward). A no-op without overlap.
  void prepare_backward();
  // Every parameter's .grad becomes its mean over ranks (collective). One process: no-op.
  void synchronize();

  const GradSyncStats& stats() const;
  struct State;

 private:
  std::unique_ptr<State> state_;
};

// Copies rank `root`'s values of `tensors` into every rank's tensors, in flat buckets; checks
// that the ranks agree on shapes and dtypes first. Collective.
void broadcast_tensors(ProcessGroup& group, const std::vector<at::Tensor>& tensors, int root = 0,
                       int64_t bucket_bytes = 25 * 1024 * 1024);

}  // namespace edgerazor::distributed
