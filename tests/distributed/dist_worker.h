// The worker side of the distributed tests: test_distributed re-executes itself with
// EDGERAZOR_DIST_TEST_WORKER=<scenario> (plus RANK/WORLD_SIZE/... from the launcher or the test),
// and this static initializer runs the scenario and exits before GoogleTest starts.
//
// Scenarios:
//   collectives  all_reduce (sum/mean/max, several dtypes, 1M+3 elements), broadcast, any,
//                barrier, gather_to_rank0, gradient presence, rank0_only (success, failure on rank 0)
//   train        TinyNet trained with data parallelism (see tiny_net.h), weights -> DIR/weights.bin
//   die          collectives in a loop; rank 1 kills itself (SIGKILL) after 3 of them
//   hang         rank 1 stops participating (sleeps) after 1 collective
//   alone        joins a job whose other ranks never come (rendezvous timeout)
//   relaunch     prints its rank and arguments (relaunch_as_workers test)
//   zero         a tiny CausalLM under ZeroOptimizer with synthetic gradients (zero_worker_test.cpp)
//   bench        not a test: all_reduce bandwidth and per-step sync overhead (README numbers)
#pragma once

namespace edgerazor::distributed::testing {
// Name of the variable that selects a scenario.
inline constexpr const char* kWorkerVar = "EDGERAZOR_DIST_TEST_WORKER";
int zero_scenario();  // zero_worker_test.cpp
}  // namespace edgerazor::distributed::testing
