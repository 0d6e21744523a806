// Worker scenarios of the distributed tests (see dist_worker.h). This file has no TESTs: its
// static initializer takes over the process when EDGERAZOR_DIST_TEST_WORKER is set.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>

#include <torch/nn/modules/container/sequential.h>

#include "distributed/dist_worker.h"
#include "distributed/tiny_net.h"
#include "edgerazor/distributed/grad_sync.h"
#include "edgerazor/distributed/process_group.h"
#include "edgerazor/distributed/trainer_sync.h"

namespace edgerazor::distributed::testing {
namespace {

void expect(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("check failed: " + what);
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

void write_file(const std::string& path, const void* data, size_t size) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

int collectives() {
  ProcessGroup pg;
  const int r = pg.rank(), w = pg.world_size();
  expect(w == 2 && pg.backend() == "gloo" && pg.device() == "cpu", "a 2-rank gloo group on cpu");

  auto big = at::arange(1000003, at::kFloat) * static_cast<double>(r + 1);  // 1+2 = 3: exact in fp32
  pg.all_reduce_sum(big, "big");
  expect(at::equal(big, at::arange(1000003, at::kFloat) * 3.0), "all_reduce_sum of 1000003 floats is exact");

  auto d = at::full({5}, static_cast<double>(2 * r + 1), at::kDouble);
  pg.all_reduce_mean(d, "mean");
  expect(at::equal(d, at::full({5}, 2.0, at::kDouble)), "all_reduce_mean (1+3)/2 = 2");

  auto i = at::full({4}, static_cast<int64_t>(r + 10), at::kLong);
  pg.all_reduce_sum(i, "ints");
  expect(at::equal(i, at::full({4}, static_cast<int64_t>(21), at::kLong)), "int64 sum 10+11");

  auto m = at::tensor(std::vector<float>{static_cast<float>(r), static_cast<float>(-r)});
  pg.all_reduce_max(m, "max");
  expect(at::equal(m, at::tensor(std::vector<float>{1.0f, 0.0f})), "max");

  auto b = at::full({3}, r == 1 ? 7.0f : 0.0f);
  pg.broadcast(b, 1, "from rank 1");
  expect(at::equal(b, at::full({3}, 7.0f)), "broadcast from rank 1");

  // Sharded layouts: rank r's part of `full` is [3r, 3r + 3).
  auto part = at::arange(3, at::kFloat) + 10.0 * r;
  auto full = at::empty({6}, at::kFloat);
  pg.all_gather(full, part, "gather");
  expect(at::equal(full, at::tensor(std::vector<float>{0, 1, 2, 10, 11, 12})), "all_gather puts rank r's part at 3r");
  auto summed = at::empty({3}, at::kFloat);
  auto contribution = at::arange(6, at::kFloat) * static_cast<double>(r + 1);  // sum over ranks: 3x
  pg.reduce_scatter_sum(summed, contribution, "scatter");
  expect(at::equal(summed, at::arange(3, at::kFloat).add(3.0 * r).mul(3.0)), "reduce_scatter: rank r gets the sum of part r");

  expect(pg.any(r == 1), "any(true on rank 1)");
  expect(!pg.any(false), "any(false everywhere)");
  pg.barrier();

  // Gradient presence: `some` has a gradient on rank 0 only, `none` nowhere.
  auto some = at::zeros({2}).requires_grad_(true);
  auto none = at::zeros({2}).requires_grad_(true);
  if (r == 0) some.mutable_grad() = at::full({2}, 2.0f);
  GradientSynchronizer sync(pg, {some, none});
  sync.synchronize();
  expect(some.grad().defined() && at::equal(some.grad(), at::full({2}, 1.0f)), "grad on one rank averages with zeros");
  expect(!none.grad().defined(), "grad on no rank stays undefined");

  const std::string mine = "state of rank " + std::to_string(r) + std::string(r == 1 ? 70000 : 1, 'x') + std::string(1, '\0');
  const auto gathered = pg.gather_to_rank0(mine, "states");
  if (r == 0)
    expect(gathered.size() == 2 && gathered[0] == mine && gathered[1] == "state of rank 1" + std::string(70000, 'x') + std::string(1, '\0'),
           "gather_to_rank0 on rank 0");
  else
    expect(gathered.empty(), "gather_to_rank0 returns nothing on other ranks");

  const std::string dir = env_or("EDGERAZOR_DIST_TEST_DIR", "");
  pg.rank0_only("write marker", [&] {
    const std::string text = "written by rank " + std::to_string(r);
    write_file(dir + "/marker.txt", text.data(), text.size());
  });
  try {
    pg.rank0_only("saving checkpoint", [] { throw std::runtime_error("disk full (simulated)"); });
    expect(false, "rank0_only failure must throw on every rank");
  } catch (const DistributedError& e) {
    expect(r != 0, "rank 0 rethrows its own exception");
    expect(std::string(e.what()) == "rank 0 failed during saving checkpoint: disk full (simulated)",
           std::string("message: ") + e.what());
  } catch (const std::runtime_error& e) {
    expect(r == 0 && std::string(e.what()) == "disk full (simulated)", std::string("rank 0 got: ") + e.what());
  }
  std::printf("collectives ok rank %d\n", r);
  return 0;
}

int train() {
  const std::string mode = env_or("EDGERAZOR_DIST_TEST_MODE", "plain");
  const std::string dir = env_or("EDGERAZOR_DIST_TEST_DIR", ".");
  ProcessGroup pg;
  const int r = pg.rank(), w = pg.world_size();
  TinyNet net = make_tiny_net(r == 0 ? 1 : 99);  // other ranks start elsewhere: the broadcast fixes it
  GradSyncOptions options;
  options.bucket_bytes(256).overlap(mode != "plain");  // 256 B: several buckets for 8x16+16+16x4+4+3 floats
  GradientSynchronizer sync(pg, net->parameters(), options);
  sync.broadcast_parameters();
  // "adapter": the trainer's path, train::GradientSync::synchronize through C10dGradientSync
  // (it shares nothing with `sync` above but the process group).
  C10dGradientSync adapter(std::shared_ptr<ProcessGroup>(&pg, [](ProcessGroup*) {}), options);

  std::vector<int64_t> rows;
  for (int64_t i = r; i < 8; i += w) rows.push_back(i);
  std::vector<std::vector<int64_t>> micro = {rows};
  if (mode == "overlap_accum" || mode == "overlap_accum_last") {
    const size_t half = rows.size() / 2;
    micro = {std::vector<int64_t>(rows.begin(), rows.begin() + half), std::vector<int64_t>(rows.begin() + half, rows.end())};
  }
  int64_t launched = 0, relaunched = 0;
  train_tiny(
      net, micro, kTinySteps,
      [&](size_t m) {
        if (mode == "overlap" || (mode == "overlap_accum" && m == 0) || (mode == "overlap_accum_last" && m + 1 == micro.size()))
          sync.prepare_backward();
      },
      [&] {
        if (mode == "adapter") {
          adapter.synchronize(net->parameters());
          std::vector<double> logged = {static_cast<double>(r), 1.5};
          adapter.average(logged);
          expect(logged[0] == 0.5 && logged[1] == 1.5, "average of logged values");
        } else {
          sync.synchronize();
        }
        launched += sync.stats().launched_in_backward;
        relaunched += sync.stats().relaunched;
        expect(!net->unused.grad().defined(), "an unused parameter keeps an undefined grad");
      });

  auto mine = flat_parameters(net);
  auto from0 = mine.clone();
  pg.broadcast(from0, 0, "final weights");
  expect(at::equal(mine, from0), "every rank ends with rank 0's weights");
  pg.rank0_only("write weights", [&] {
    auto c = mine.contiguous();
    write_file(dir + "/weights.bin", c.data_ptr<float>(), static_cast<size_t>(c.numel()) * sizeof(float));
  });
  std::printf("train ok rank %d buckets=%lld launched_in_backward=%lld relaunched=%lld\n", r,
              static_cast<long long>(sync.stats().buckets), static_cast<long long>(launched),
              static_cast<long long>(relaunched));
  return 0;
}

int die_or_hang(bool die) {
  ProcessGroup pg;
  for (int i = 0; i < 1000000; ++i) {
    auto t = at::ones({1024});
    pg.all_reduce_sum(t, "step " + std::to_string(i));
    if (pg.rank() == 1 && i == 3) {
      std::printf("rank 1 %s now\n", die ? "dies" : "hangs");
      std::fflush(stdout);
      if (die) std::raise(SIGKILL);
      std::this_thread::sleep_for(std::chrono::seconds(600));
    }
  }
  return 0;
}

// Not a test: `EDGERAZOR_DIST_TEST_WORKER=bench edgerazor-launch --nproc-per-node 2 -- test_distributed`
// (or without the launcher for 1 rank). Prints all_reduce bandwidth and per-step sync overhead.
int bench() {
  ProcessGroup pg;
  const int w = pg.world_size();
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); };
  if (pg.is_rank0()) std::printf("world_size=%d backend=%s threads=%d\n", w, pg.backend().c_str(), at::get_num_threads());
  for (int64_t mb : {1, 25, 100}) {
    if (w == 1) break;
    auto t = at::ones({mb * 1024 * 1024 / 4});
    for (int i = 0; i < 2; ++i) pg.all_reduce_sum(t);
    const int iters = 5;
    pg.barrier();
    const auto start = Clock::now();
    for (int i = 0; i < iters; ++i) pg.all_reduce_sum(t);
    const double s = seconds(start) / iters;
    if (pg.is_rank0())
      std::printf("all_reduce %3lld MB fp32: %.4f s, algbw %.2f GB/s, busbw %.2f GB/s\n", static_cast<long long>(mb), s,
                  mb * 1.048576e-3 / s, mb * 1.048576e-3 / s * 2.0 * (w - 1) / std::max(w, 1));
  }
  // Step overhead: 6 x Linear(2048, 2048) (25.2 M parameters, 100 MB of fp32 gradients).
  const int64_t width = std::atoi(env_or("EDGERAZOR_DIST_BENCH_WIDTH", "2048").c_str());
  const int64_t batch = std::atoi(env_or("EDGERAZOR_DIST_BENCH_BATCH", "32").c_str());
  at::manual_seed(1);
  torch::nn::Sequential net;
  for (int i = 0; i < 6; ++i) net->push_back(torch::nn::Linear(width, width));
  auto x = at::randn({batch, width});
  for (const char* mode : {"none", "plain", "overlap"}) {
    const bool sync_on = std::string(mode) != "none";
    GradientSynchronizer sync(pg, net->parameters(), GradSyncOptions().overlap(std::string(mode) == "overlap"));
    double total = 0, in_sync = 0;
    const int steps = 6;
    for (int step = 0; step < steps; ++step) {
      for (auto& p : net->parameters()) p.mutable_grad() = at::Tensor();
      pg.barrier();
      const auto start = Clock::now();
      if (sync_on) sync.prepare_backward();
      net->forward(x).pow(2).mean().backward();
      if (sync_on) sync.synchronize();
      if (step > 0) {  // step 0 warms up
        total += seconds(start);
        in_sync += sync_on ? sync.stats().wait_seconds : 0;
      }
    }
    if (pg.is_rank0())
      std::printf("step (6 x Linear(%lld), batch %lld, %.1f MB grads) sync=%-7s: %.4f s/step, of which in synchronize() %.4f s\n",
                  static_cast<long long>(width), static_cast<long long>(batch), sync.stats().bytes / 1048576.0, mode,
                  total / (steps - 1), in_sync / (steps - 1));
  }
  return 0;
}

// Started by relaunch_as_workers from the test: prints its rank and the arguments it got.
int relaunch() {
  const DistEnv env = read_dist_env();
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string args;
  size_t start = all.find('\0');  // skip argv[0]
  while (start != std::string::npos && start + 1 < all.size()) {
    const size_t end = all.find('\0', start + 1);
    args += " " + all.substr(start + 1, end - start - 1);
    start = end;
  }
  std::printf("worker %d of %d:%s\n", env.rank, env.world_size, args.c_str());
  return 0;
}

int run_scenario(const std::string& name) {
  if (name == "bench") return bench();
  if (name == "relaunch") return relaunch();
  if (name == "collectives") return collectives();
  if (name == "train") return train();
  if (name == "zero") return zero_scenario();
  if (name == "die") return die_or_hang(true);
  if (name == "hang") return die_or_hang(false);
  if (name == "alone") {
    ProcessGroup pg;
    return 0;
  }
  throw std::runtime_error("unknown worker scenario '" + name + "'");
}

const bool kWorkerRan = [] {
  const char* scenario = std::getenv(kWorkerVar);
  if (scenario == nullptr) return false;
  int rc = 1;
  try {
    rc = run_scenario(scenario);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "worker error: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker error: %s\n", e.what());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}();

}  // namespace
}  // namespace edgerazor::distributed::testing
