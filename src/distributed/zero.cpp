// Implements: ZeroOptimizer (see edgerazor/distributed/zero.h). Checkpoint files: zero_checkpoint.cpp.
#include "edgerazor/distributed/zero.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "../runtime/openmp_required.h"
#include <ATen/autocast_mode.h>
#include <c10/core/DeviceGuard.h>

#include <cmath>
#include <mutex>

#include "edgerazor/core/error.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/quant/weight_quantizer.h"
#include "edgerazor/train/adamw_kernel.h"
#include "edgerazor/train/step.h"
#include "../train/sum_of_squares.h"
#include "zero_state.h"

namespace edgerazor::distributed {

using State = ZeroOptimizer::State;

ShardingStage parse_sharding(const std::string& name) {
  if (name == "none") return ShardingStage::none;
  if (name == "optimizer") return ShardingStage::optimizer;
  if (name == "gradients") return ShardingStage::gradients;
  if (name == "parameters") return ShardingStage::parameters;
  throw ConfigError("distributed.sharding: must be none, optimizer, gradients or parameters, got '" + name + "'");
}

const char* sharding_name(ShardingStage stage) {
  switch (stage) {
    case ShardingStage::none: return "none";
    case ShardingStage::optimizer: return "optimizer";
    case ShardingStage::gradients: return "gradients";
    case ShardingStage::parameters: return "parameters";
  }
  return "?";
}

namespace {

// A flat buffer's memory comes and goes while its parameter views keep their shapes (FSDP's
// storage resize): views read storage.data() + offset at every access.
void free_storage(const at::Tensor& t) {
  c10::StorageImpl* impl = t.storage().unsafeGetStorageImpl();
  impl->set_data_ptr_noswap(at::DataPtr(nullptr, t.device()));
  impl->set_nbytes(0);
}

void allocate_storage(const at::Tensor& t) {
  c10::StorageImpl* impl = t.storage().unsafeGetStorageImpl();
  const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
  if (impl->nbytes() == nbytes) return;
  c10::DeviceGuard guard(t.device());
  impl->set_data_ptr_noswap(impl->allocator()->allocate(nbytes));
  impl->set_nbytes(nbytes);
}

}  // namespace

// Gradients of a unit -> averaged sum in this rank's shard (sums; finish_backward divides by W).
void State::reduce(Unit& u) {
  at::NoGradGuard no_grad;
  const auto finish = [&] {
    u.pending = static_cast<int64_t>(u.params.size());
    for (size_t i : u.params) ready[i] = 0;
  };
  if (!group.distributed()) {  // the shard is the unit: add the gradients in place
    for (size_t k = 0; k < u.params.size(); ++k) {
      at::Tensor& p = params[u.params[k]];
      if (p.grad().defined()) u.grad.narrow(0, u.offsets[k], p.numel()).view(p.sizes()).add_(p.grad());
      p.mutable_grad() = at::Tensor();
    }
    return finish();
  }
  // Each gradient is released as soon as it is in `full`, so the unit's gradients exist once.
  at::Tensor full = at::zeros({u.padded}, u.flat.options());
  for (size_t k = 0; k < u.params.size(); ++k) {
    at::Tensor& p = params[u.params[k]];
    if (p.grad().defined()) full.narrow(0, u.offsets[k], p.numel()).view(p.sizes()).copy_(p.grad());
    p.mutable_grad() = at::Tensor();
  }
  at::Tensor part = at::empty({u.shard}, u.flat.options());
  group.reduce_scatter_sum(part, full, "gradients of " + u.name);
  full = at::Tensor();
  u.grad.add_(part);
  finish();
}

void State::on_grad_ready(size_t param) {
  std::lock_guard<std::mutex> lock(mutex);
  Unit& u = units[unit_of[param]];
  if (u.layer < 0 || ready[param]) return;  // the outer unit is reduced in finish_backward
  ready[param] = 1;
  --u.pending;
  while (next_launch < layer_order.size() && units[layer_order[next_launch]].pending == 0)
    reduce(units[layer_order[next_launch++]]);
  if (next_launch == layer_order.size()) next_launch = 0;  // the next micro-batch's backward
}

// ---- stage 3: gathered layers -----------------------------------------------------------------

void State::start_gather(Unit& u) {
  if (u.params.empty() || u.present || u.gathering.valid()) return;
  allocate_storage(u.flat);
  u.gathering = group.all_gather_async(u.flat, u.master, "weights of " + u.name);
}

void State::make_present(Unit& u) {
  if (u.params.empty() || u.present) return;
  start_gather(u);
  u.gathering.wait();
  u.present = true;
}

void State::release(Unit& u) {
  if (u.gathering.valid()) {  // a prefetch nobody used (a forward that stopped early): finish it first
    u.gathering.wait();
    u.present = true;
  }
  if (!u.present) return;
  u.quantized.reset();  // the latent views come back before the memory goes
  free_storage(u.flat);
  u.present = false;
}

struct LayerHooks : model::BlockParameterHooks {
  explicit LayerHooks(State* s) : state(s) {}
  void acquire(int64_t layer, bool backward) override {
    State& s = *state;
    if (s.materialized) return;
    Unit& u = s.units.at(static_cast<size_t>(layer));
    s.make_present(u);
    if (!u.quantized && !u.params.empty()) {
      auto& module = *s.student.model->layers[static_cast<size_t>(layer)];
      u.quantized = std::make_unique<quant::QuantizedWeightsScope>(module);
    }
    const int64_t next = backward ? layer - 1 : layer + 1;  // prefetch the layer that comes next
    if (next >= 0 && next < s.student.config.num_hidden_layers) s.start_gather(s.units[static_cast<size_t>(next)]);
  }
  void release(int64_t layer, bool /*backward*/) override {
    State& s = *state;
    if (s.materialized) return;
    s.release(s.units.at(static_cast<size_t>(layer)));
    // Autocast keeps a bf16 copy of every weight it cast until its scope ends: drop this layer's.
    at::autocast::clear_cache();
  }
  State* state;
};

// ---- construction -----------------------------------------------------------------------------

ZeroOptimizer::ZeroOptimizer(ProcessGroup& group, model::CausalLMImpl& student, const config::TrainSection& train,
                             ShardingStage stage)
    : state_(std::make_unique<State>(group, student)) {
  State& s = *state_;
  if (stage == ShardingStage::none) throw ConfigError("distributed.sharding: ZeroOptimizer needs a stage above none");
  s.stage = stage;
  s.train = train;
  const int W = group.world_size(), r = group.rank();
  at::NoGradGuard no_grad;

  // Units: unit i = decoder layer i, then the outer one; parameters in registration order.
  const int64_t L = student.config.num_hidden_layers;
  s.units.resize(static_cast<size_t>(L) + 1);
  for (int64_t i = 0; i < L; ++i) {
    s.units[static_cast<size_t>(i)].layer = i;
    s.units[static_cast<size_t>(i)].name = "model.layers." + std::to_string(i);
  }
  s.units.back().name = "outer";
  std::vector<char> decay;  // per parameter
  for (const auto& [name, p] : student.unique_named_parameters()) {
    if (!p.requires_grad()) continue;
    if (p.scalar_type() != at::kFloat || !p.is_contiguous())
      throw ConfigError("distributed.sharding: parameter " + name + " is not a contiguous float32 tensor");
    const int64_t layer = model::decoder_layer_of(name);
    const size_t unit = layer >= 0 ? static_cast<size_t>(layer) : s.units.size() - 1;
    Unit& u = s.units.at(unit);
    u.params.push_back(s.params.size());
    u.offsets.push_back(u.numel);
    u.names.push_back(name);
    u.numel += p.numel();
    decay.push_back(train::takes_weight_decay(name, train));
    s.unit_of.push_back(unit);
    s.params.push_back(p);
  }
  s.ready.assign(s.params.size(), 0);
  for (int64_t i = L; i-- > 0;)  // a layer without trainable parameters (frozen) has nothing to reduce
    if (!s.units[static_cast<size_t>(i)].params.empty()) s.layer_order.push_back(static_cast<size_t>(i));

  for (size_t ui = 0; ui < s.units.size(); ++ui) {
    Unit& u = s.units[ui];
    if (u.params.empty()) continue;
    u.padded = (u.numel + W - 1) / W * W;
    u.shard = u.padded / W;
    const auto options = s.params[u.params.front()].options().requires_grad(false);
    u.flat = at::zeros({u.padded}, options);
    for (size_t k = 0; k < u.params.size(); ++k) {
      at::Tensor& p = s.params[u.params[k]];
      at::Tensor view = u.flat.narrow(0, u.offsets[k], p.numel()).view(p.sizes());
      view.copy_(p);
      p.set_data(view);  // the module's tensor now lives in the flat buffer
    }
    // This rank's segments: its range of the unit's elements, cut at parameter boundaries.
    const auto [begin, end] = owned_range(u.numel, W, r);
    for (size_t k = 0; k < u.params.size(); ++k) {
      const int64_t p0 = u.offsets[k], p1 = p0 + s.params[u.params[k]].numel();
      const int64_t a = std::max(p0, begin), b = std::min(p1, end);
      if (a < b) u.segments.push_back({a - begin, b - a, static_cast<bool>(decay[u.params[k]])});
    }
    u.grad = at::zeros({u.shard}, options);
    u.exp_avg = at::zeros({u.shard}, options);
    u.exp_avg_sq = at::zeros({u.shard}, options);
    u.pending = static_cast<int64_t>(u.params.size());
    if (stage == ShardingStage::parameters) {
      u.master = u.flat.narrow(0, r * u.shard, u.shard).clone();
      free_storage(u.flat);
    } else {
      u.master = u.flat.narrow(0, r * u.shard, u.shard);  // the weights themselves
      u.present = true;
    }
    ++s.stats.units;
    s.stats.parameters += u.numel;
    s.stats.shard_elements += u.shard;
  }

  if (stage >= ShardingStage::gradients)  // also on one rank: gradients go into the shard early
    s.grad_hooks.install(s.params, [&s](size_t i) { s.on_grad_ready(i); }, "ZeRO");
  if (stage == ShardingStage::parameters) {
    student.set_gradient_checkpointing(true);
    s.hooks = std::make_shared<LayerHooks>(&s);
    student.model->block_hooks = s.hooks;
  }
}

ZeroOptimizer::~ZeroOptimizer() {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  s.grad_hooks.remove();
  if (s.student.model && s.student.model->block_hooks == s.hooks) s.student.model->block_hooks = nullptr;
  for (auto& u : s.units) {
    if (u.gathering.valid()) {
      try {
        u.gathering.wait();
      } catch (...) {
      }
    }
    u.quantized.reset();
  }
}

ShardingStage ZeroOptimizer::stage() const { return state_->stage; }
const ZeroStats& ZeroOptimizer::stats() const { return state_->stats; }
int64_t ZeroOptimizer::adam_steps() const { return state_->adam_steps; }

// ---- the step ---------------------------------------------------------------------------------

void ZeroOptimizer::begin_step() {
  State& s = *state_;
  if (s.stage == ShardingStage::parameters && !s.materialized) s.make_present(s.units.back());
}

void ZeroOptimizer::finish_backward() {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  at::NoGradGuard no_grad;
  // Units still holding gradients on some rank (all of them for stage 1; for stages 2-3 those the
  // hooks did not reduce, or that received more after their reduction) are reduced, in one order.
  const size_t n = s.units.size();
  auto flags = at::zeros({static_cast<int64_t>(n)}, at::TensorOptions().dtype(at::kFloat));
  float* f = flags.data_ptr<float>();
  for (size_t u = 0; u < n; ++u)
    for (size_t i : s.units[u].params)
      if (s.params[i].grad().defined()) f[u] = 1;
  auto agreed = flags.to(at::Device(s.group.device()));
  s.group.all_reduce_sum(agreed, "gradients left to reduce");
  agreed = agreed.cpu();
  const float* a = agreed.data_ptr<float>();
  for (size_t k : s.layer_order)
    if (a[k] > 0) s.reduce(s.units[k]);
  if (a[n - 1] > 0 && !s.units.back().params.empty()) s.reduce(s.units.back());
  for (auto& u : s.units) {
    u.pending = static_cast<int64_t>(u.params.size());
    if (s.group.world_size() > 1 && u.grad.defined()) u.grad.div_(s.group.world_size());
  }
  std::fill(s.ready.begin(), s.ready.end(), 0);
  s.next_launch = 0;
  s.grad_scale = 1.0;  // new gradients: a coefficient from an earlier clip_gradients no longer applies
}

double ZeroOptimizer::clip_gradients(double max_norm) {
  State& s = *state_;
  at::NoGradGuard no_grad;
  double cpu_sq = 0;  // the CPU shards', summed without a copy
  at::Tensor sq = at::zeros({1}, at::TensorOptions().dtype(at::kDouble));  // other devices', summed where they live
  for (auto& u : s.units)
    if (u.grad.defined()) {
      if (u.grad.device().is_cpu()) {
        cpu_sq += train::sum_of_squares_f64(u.grad);
        continue;
      }
      if (sq.device() != u.grad.device()) sq = sq.to(u.grad.device());
      sq += u.grad.to(at::kDouble).pow(2).sum();
    }
  sq = sq.to(at::Device(s.group.device())) + cpu_sq;
  s.group.all_reduce_sum(sq, "gradient norm");
  const double norm = std::sqrt(sq.item<double>());
  if (max_norm > 0) {  // torch::nn::utils::clip_grad_norm_'s rule
    const double coef = max_norm / (norm + 1e-6);
    // Folded into step(), which reads every gradient as g * coef (on the CPU, in the same fp32
    // multiply as grad.mul_(coef)): no pass that rewrites the gradients here. A norm-only call
    // (max_norm <= 0) leaves a pending coefficient as it is.
    s.grad_scale = coef < 1 ? coef : 1.0;
  }
  return norm;
}

void ZeroOptimizer::step(double lr) {
  State& s = *state_;
  at::NoGradGuard no_grad;
  const auto& t = s.train;
  ++s.adam_steps;
  const double bc1 = 1 - std::pow(t.beta1, s.adam_steps), bc2 = 1 - std::pow(t.beta2, s.adam_steps);
  const auto coefficients = [&](bool decay) {
    const double wd = decay ? t.weight_decay : 0.0;
    return train::AdamWCoefficients{static_cast<float>(1 - lr * wd), static_cast<float>(t.beta1),
                                    static_cast<float>(1 - t.beta1),  static_cast<float>(t.beta2),
                                    static_cast<float>(1 - t.beta2),  static_cast<float>(std::sqrt(bc2)),
                                    static_cast<float>(t.eps),        static_cast<float>(-lr / bc1)};
  };
  train::AdamWCoefficients with_decay = coefficients(true), without_decay = coefficients(false);
  with_decay.grad_scale = without_decay.grad_scale = static_cast<float>(s.grad_scale);
  for (auto& u : s.units) {
    if (u.params.empty()) continue;
    const bool cpu = u.master.device().is_cpu();
    if (!cpu && s.grad_scale != 1.0) u.grad.mul_(s.grad_scale);
    for (const Segment& seg : u.segments) {
      const train::AdamWCoefficients& c = seg.decay ? with_decay : without_decay;
      if (cpu) {
        float* p = u.master.data_ptr<float>() + seg.shard_offset;
        const float* g = u.grad.data_ptr<float>() + seg.shard_offset;
        float* m = u.exp_avg.data_ptr<float>() + seg.shard_offset;
        float* v = u.exp_avg_sq.data_ptr<float>() + seg.shard_offset;
        at::parallel_for(0, seg.length, 1 << 14, [&](int64_t b, int64_t e) {
          train::adamw_update_f32(p + b, g + b, m + b, v + b, e - b, c);
        });
      } else {  // the same maths in ATen ops (GPU)
        at::Tensor p = u.master.narrow(0, seg.shard_offset, seg.length), g = u.grad.narrow(0, seg.shard_offset, seg.length);
        at::Tensor m = u.exp_avg.narrow(0, seg.shard_offset, seg.length), v = u.exp_avg_sq.narrow(0, seg.shard_offset, seg.length);
        p.mul_(c.decay);
        m.mul_(c.beta1).add_(g, c.one_minus_beta1);
        v.mul_(c.beta2).addcmul_(g, g, c.one_minus_beta2);
        p.addcdiv_(m, v.sqrt().div_(c.sqrt_bc2).add_(c.eps), c.neg_step_size);
      }
    }
    u.grad.zero_();
  }
  s.grad_scale = 1.0;  // for one step only
  if (s.stage == ShardingStage::parameters && !s.materialized) {
    for (auto& u : s.units) s.release(u);  // the next step gathers the updated shards
    return;
  }
  for (auto& u : s.units) {  // every rank's updated part to every rank (stage 3: the materialized copy)
    if (u.params.empty()) continue;
    at::Tensor mine = u.master.clone();  // the input must not alias the output for every backend
    s.group.all_gather(u.flat, mine, "weights of " + u.name);
  }
}

void ZeroOptimizer::materialize() {
  State& s = *state_;
  if (s.stage != ShardingStage::parameters || s.materialized) return;
  for (auto& u : s.units) {
    if (u.params.empty()) continue;
    u.quantized.reset();
    s.make_present(u);
  }
  s.materialized = true;
}

void ZeroOptimizer::release_all() {
  State& s = *state_;
  if (s.stage != ShardingStage::parameters) return;
  s.materialized = false;
  for (auto& u : s.units) s.release(u);
}

}  // namespace edgerazor::distributed
