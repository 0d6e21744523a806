// ZeroOptimizer's state (zero.h), shared by zero.cpp (the step) and zero_checkpoint.cpp (files).
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/distributed/zero.h"
#include "grad_ready_hooks.h"
#include "edgerazor/model/block_hooks.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/quant/weight_quantizer.h"

namespace edgerazor::distributed {

// Elements [begin, end) of a unit of `numel` elements that rank `rank` of `world` holds: the shard
// of ceil(numel / world) elements, cut at the end of the unit (the rest is padding).
inline std::pair<int64_t, int64_t> owned_range(int64_t numel, int world, int rank) {
  const int64_t shard = (numel + world - 1) / world;
  return {std::min<int64_t>(rank * shard, numel), std::min<int64_t>((rank + 1) * shard, numel)};
}

// Part of this rank's shard that lies in one parameter.
struct Segment {
  int64_t shard_offset = 0;  // first element in the shard
  int64_t length = 0;
  bool decay = true;         // weight decay applies (HF's groups)
};

struct Unit {
  std::string name;                 // "model.layers.3" or "outer"
  int64_t layer = -1;               // -1: the outer unit
  std::vector<size_t> params;       // indices into State::params
  std::vector<std::string> names;   // their parameter names (checkpoint layout)
  std::vector<int64_t> offsets;     // element offset of each parameter in `flat`
  int64_t numel = 0, padded = 0, shard = 0;
  at::Tensor flat;                  // (padded,) the parameters' storage; stage 3: freed unless present
  at::Tensor master;                // (shard,) this rank's latent weights: a view of flat (stages 1-2)
  at::Tensor grad, exp_avg, exp_avg_sq;  // (shard,)
  std::vector<Segment> segments;
  int64_t pending = 0;              // parameters whose gradient has not arrived in this backward
  bool present = false;             // stage 3: flat holds the gathered weights
  PendingCollective gathering;      // stage 3: a gather in flight (prefetch)
  std::unique_ptr<quant::QuantizedWeightsScope> quantized;  // stage 3: Q(latent) while present in a step
};

struct ZeroOptimizer::State {
  State(ProcessGroup& g, model::CausalLMImpl& s) : group(g), student(s) {}
  ProcessGroup& group;
  model::CausalLMImpl& student;
  ShardingStage stage = ShardingStage::none;
  config::TrainSection train;
  std::vector<at::Tensor> params;   // trainable, unique, registration order
  std::vector<size_t> unit_of;      // per parameter
  std::vector<char> ready;          // per parameter: gradient arrived in this backward
  std::vector<Unit> units;          // unit i = decoder layer i (i < L), then the outer unit
  std::vector<size_t> layer_order;  // units in the order backward finishes them (last layer first)
  size_t next_launch = 0;           // index into layer_order of the next unit to reduce
  int64_t adam_steps = 0;
  // clip_gradients' coefficient, applied by the next step() as it reads the shard's gradients (1: none)
  double grad_scale = 1.0;
  bool materialized = false;
  std::mutex mutex;                 // gradient hooks may run on autograd worker threads
  GradReadyHooks grad_hooks;        // stages 2-3: a layer's gradients reduced as backward finishes it
  std::shared_ptr<model::BlockParameterHooks> hooks;
  ZeroStats stats;

  void reduce(Unit& u);
  void on_grad_ready(size_t param);
  void start_gather(Unit& u);
  void make_present(Unit& u);
  void release(Unit& u);
};

}  // namespace edgerazor::distributed
