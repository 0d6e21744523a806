// Implements: the trainer's hook for data-parallel training. The trainer calls synchronize() after
// the last micro-batch's backward and before clipping, so a c10d all-reduce plugs in here; rank()
// decides which process writes checkpoints, metrics and the progress line (rank 0 only) and which
// slice of the data stream it reads. The default is a single process: every call is a no-op.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace edgerazor::train {

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  virtual int rank() const { return 0; }
  virtual int world_size() const { return 1; }
  // Make every rank's .grad of `parameters` equal (e.g. the average over ranks).
  virtual void synchronize(const std::vector<at::Tensor>& parameters) { (void)parameters; }
  // Average logged scalars (loss parts, token counts) over ranks, in place.
  virtual void average(std::vector<double>& values) { (void)values; }
  // Wait for every rank (around checkpoint writes).
  virtual void barrier() {}
  bool is_io_rank() const { return rank() == 0; }
};

}  // namespace edgerazor::train
