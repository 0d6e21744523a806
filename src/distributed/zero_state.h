// ZeroOptimizer's state (zero.h), shared by zero.cpp (the step) and zero_checkpoint.cpp (files).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/variable.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "edgerazor/distributed/zero.h"
#include "edgerazor/model/block_hooks.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/quant/weight_quantizer.h"

namespace edgerazor::distributed {

// Part of this rank's shard that lies in one parameter.
struct Segment {
  size_t param = 0;
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
  std::vector<char> decay;          // per parameter
  std::vector<size_t> unit_of;      // per parameter
  std::vector<char> ready;          // per parameter: gradient arrived in this backward
  std::vector<Unit> units;          // layers 0..L-1, then the outer unit
  std::vector<size_t> layer_unit;   // layer -> unit
  std::vector<size_t> layer_order;  // units in the order backward finishes them (last layer first)
  size_t next_launch = 0;           // index into layer_order of the next unit to reduce
  int64_t adam_steps = 0;
  bool materialized = false;
  bool prefetch = true;
  std::mutex mutex;                 // gradient hooks may run on autograd worker threads
  std::vector<decltype(torch::autograd::impl::grad_accumulator(std::declval<at::Tensor>()))> accumulators;
  std::vector<uintptr_t> hook_keys;
  std::shared_ptr<model::BlockParameterHooks> hooks;
  ZeroStats stats;

  void reduce(Unit& u);
  void on_grad_ready(size_t param);
  void start_gather(Unit& u, bool ahead);
  void make_present(Unit& u);
  void release(Unit& u);
};

}  // namespace edgerazor::distributed
