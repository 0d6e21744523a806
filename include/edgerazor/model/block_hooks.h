// Implements: BlockParameterHooks, the seam through which sharded data parallel (ZeRO-3,
// distributed/zero.h) makes a decoder layer's weights present only while that layer computes.
// Torch-free.
//
// TransformerImpl::forward calls acquire(i) before decoder layer i runs and release(i) after it.
// Under gradient checkpointing the layer runs again in backward, so the checkpoint function calls
// acquire(i, backward=true) before the recompute and release(i, backward=true) after the layer's
// gradients are computed: between the two calls nothing else holds the layer's weights. Without
// checkpointing and with autograd on, forward calls acquire only (autograd keeps what it saved
// until backward; the owner releases everything after the step).
#pragma once

#include <cstdint>

namespace edgerazor::model {

class BlockParameterHooks {
 public:
  virtual ~BlockParameterHooks() = default;
  virtual void acquire(int64_t layer, bool backward) = 0;
  virtual void release(int64_t layer, bool backward) = 0;
};

}  // namespace edgerazor::model
