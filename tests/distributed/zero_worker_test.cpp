// The "zero" worker scenario of the distributed tests (dist_worker.h): a tiny CausalLM whose
// ZeroOptimizer takes synthetic gradients (the same on every rank), so a run on 1 rank and on 2
// must give the same weights, and a sharded checkpoint written by one world size must load on
// another. No TESTs here: dist_test.cpp drives it.
//
//   EDGERAZOR_ZERO_STAGE  optimizer | gradients | parameters
//   EDGERAZOR_ZERO_LOAD   folder of a previous run (weights.bin + trainer_state/zero/), or unset
//   EDGERAZOR_ZERO_STEPS  optimizer steps to take (default 2)
//   EDGERAZOR_ZERO_OUT    folder to write: weights.bin (rank 0) and the sharded optimizer state
//   EDGERAZOR_ZERO_MAX_NORM  clipping threshold (default 1; 0: none)
//   EDGERAZOR_ZERO_PRESCALE  1: the worker clips the synthetic gradients itself (torch's rule, its
//                         own fp64 norm) and ZeroOptimizer only measures the norm, so that the
//                         weights can be compared with clipping folded into ZeroOptimizer::step
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "distributed/dist_worker.h"
#include "edgerazor/distributed/process_group.h"
#include "edgerazor/distributed/zero.h"
#include "edgerazor/model/transformer.h"
#include "fixtures/tiny_models.h"

namespace edgerazor::distributed::testing {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

// Every trainable parameter, in the order unique_named_parameters gives them, as one fp32 file.
void write_weights(model::CausalLMImpl& m, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& [name, p] : m.unique_named_parameters()) {
    const at::Tensor c = p.detach().contiguous();
    out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  }
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

void read_weights(model::CausalLMImpl& m, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  at::NoGradGuard no_grad;
  for (auto& [name, p] : m.unique_named_parameters()) {
    at::Tensor c = at::empty_like(p).contiguous();
    in.read(static_cast<char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    p.copy_(c);
  }
  if (!in) throw std::runtime_error("cannot read " + path);
}

}  // namespace

int zero_scenario() {
  ProcessGroup group;
  at::manual_seed(7);
  model::CausalLM student(edgerazor_test::tiny_qwen3_config(37, 16, 24, 3, 8));
  const std::string load = env_or("EDGERAZOR_ZERO_LOAD", ""), out = env_or("EDGERAZOR_ZERO_OUT", ".");
  if (!load.empty()) read_weights(*student, load + "/weights.bin");
  config::TrainSection train;
  train.lr = 0.01;
  train.weight_decay = 0.1;
  // AdamW is nearly blind to a common gradient scale (m / sqrt(v)); a large eps makes the clipping
  // coefficient show in the weights, so that the prescale comparison can tell a lost one.
  train.eps = 1e-3;
  ZeroOptimizer zero(group, *student, train, parse_sharding(env_or("EDGERAZOR_ZERO_STAGE", "optimizer")));
  if (!load.empty()) zero.load(load);
  const int steps = std::stoi(env_or("EDGERAZOR_ZERO_STEPS", "2"));
  const bool prescale = env_or("EDGERAZOR_ZERO_PRESCALE", "0") == "1";
  const double max_norm = std::stod(env_or("EDGERAZOR_ZERO_MAX_NORM", "1"));
  for (int step = 0; step < steps; ++step) {
    zero.begin_step();
    int64_t index = 0;
    double sum_sq = 0;
    for (auto& [name, p] : student->unique_named_parameters()) {  // the same on every rank
      ++index;
      const double f = 0.1 * static_cast<double>(index) + 0.03 * (zero.adam_steps() + 1);
      p.mutable_grad() = at::sin(at::arange(p.numel(), at::kFloat) * f).reshape(p.sizes());
      sum_sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
    }
    const double coef = max_norm > 0 ? max_norm / (std::sqrt(sum_sq) + 1e-6) : 1.0;
    if (prescale && coef < 1)
      for (auto& [name, p] : student->unique_named_parameters()) p.mutable_grad().mul_(coef);
    zero.finish_backward();
    const double norm = zero.clip_gradients(prescale ? 0.0 : max_norm);
    if (!prescale && std::abs(norm - std::sqrt(sum_sq)) > 1e-9 * norm) {
      std::fprintf(stderr, "gradient norm %.17g, expected %.17g\n", norm, std::sqrt(sum_sq));
      return 1;
    }
    if (coef < 1) std::printf("step %d clipped by %.6f\n", step + 1, coef);
    zero.step(train.lr);
  }
  std::filesystem::create_directories(out);
  zero.save(out);
  zero.materialize();
  if (group.is_rank0()) write_weights(*student, out + "/weights.bin");
  zero.release_all();
  group.barrier("done");
  std::printf("zero ok rank %d of %d, %lld adam steps\n", group.rank(), group.world_size(),
              static_cast<long long>(zero.adam_steps()));
  return 0;
}

}  // namespace edgerazor::distributed::testing
