// LossOutput: what every EdgeRazor loss module returns.
//
// `total` is the scalar to call backward() on (attached to the student's graph). `parts` are
// named scalar tensors for logging ("task_ce", "eakld", "eakld.gamma", "lafd", "lafd.layer_0",
// ...); they are detached, so a trainer may keep them without holding the graph alive.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace edgerazor::distill {

struct LossOutput {
  at::Tensor total;                                          // () scalar, differentiable
  std::vector<std::pair<std::string, at::Tensor>> parts;     // () scalars, detached
};

}  // namespace edgerazor::distill
