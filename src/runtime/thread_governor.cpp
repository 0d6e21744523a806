// Implements: adapt_threads, threads_beside_load (edgerazor/runtime/runtime.h).
//
// Why: OpenMP's intra-op threads meet at a barrier after every parallel region. When another job
// runs on one of our cores, the thread that shares it is descheduled for whole time slices and
// the others spin at the barrier waiting for it: with one busy process beside us on 2 cores,
// training ran 3x and batch generation 13x slower with 2 threads than with 1. The fix is to use
// only the cores the other load leaves, measured as it comes and goes.
#include "edgerazor/runtime/runtime.h"
#include "edgerazor/core/log.h"
#include "thread_governor.h"

#include <ATen/Parallel.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

namespace edgerazor::runtime {
namespace {

constexpr double kSampleSeconds = 0.5;

struct Sample {
  double wall_s = 0;     // monotonic clock
  double busy_s = 0;     // busy time of our cores, all processes (/proc/stat, in seconds)
  double own_cpu_s = 0;  // this process, all threads
  bool valid = false;
};

struct Governor {
  std::atomic<bool> enabled{false};
  int cores = 1;
  int current = 1;
  bool announced = false;
  Sample last;
};
Governor& governor() {
  static Governor g;
  return g;
}

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Busy seconds of the cores in our affinity mask: user+nice+system+irq+softirq+steal of each
// "cpuN" line (guest time is already inside user). Idle and iowait are not busy.
bool busy_seconds_of_our_cores(double& busy_s) {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) != 0) return false;
  std::ifstream in("/proc/stat");
  if (!in) return false;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (ticks <= 0) return false;
  std::string line;
  unsigned long long busy = 0;
  int seen = 0;
  while (std::getline(in, line)) {
    if (line.rfind("cpu", 0) != 0 || line.size() < 4 || line[3] < '0' || line[3] > '9') continue;
    std::istringstream fields(line.substr(3));
    int cpu = -1;
    unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    fields >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    if (!fields && !fields.eof()) continue;
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask)) continue;
    busy += user + nice + system + irq + softirq + steal;
    ++seen;
  }
  if (seen == 0) return false;
  busy_s = static_cast<double>(busy) / ticks;
  return true;
}

Sample take_sample() {
  Sample s;
  s.wall_s = monotonic_seconds();
  s.own_cpu_s = process_cpu_seconds();
  s.valid = busy_seconds_of_our_cores(s.busy_s);
  return s;
}

}  // namespace

namespace detail {

void governor_enable(int cores) {
  governor().cores = std::max(1, cores);
  governor().current = governor().cores;
  governor().last = take_sample();
  governor().enabled = governor().cores > 1 && governor().last.valid;
}

void governor_disable() { governor().enabled = false; }

}  // namespace detail

int threads_beside_load(int cores, double other_busy) {
  const int taken = static_cast<int>(std::floor(std::max(0.0, other_busy) + 0.5));
  return std::clamp(cores - taken, 1, std::max(1, cores));
}

void adapt_threads() {
  Governor& g = governor();
  if (!g.enabled) return;
  const double now = monotonic_seconds();
  if (now - g.last.wall_s < kSampleSeconds) return;
  const Sample s = take_sample();
  if (!s.valid || !g.last.valid) {
    g.last = s;
    return;
  }
  const double wall = s.wall_s - g.last.wall_s;
  const double other_busy = ((s.busy_s - g.last.busy_s) - (s.own_cpu_s - g.last.own_cpu_s)) / wall;
  g.last = s;
  const int want = threads_beside_load(g.cores, other_busy);
  if (want == g.current) return;
  if (!g.announced) {
    log_info("other processes keep ~" + std::to_string(static_cast<int>(std::lround(other_busy))) + " of " +
             std::to_string(g.cores) + " cores busy: intra-op threads " + std::to_string(g.current) + " -> " +
             std::to_string(want) + " (they follow the load from now on; --threads N fixes the count)");
    g.announced = true;
  }
  g.current = want;
  at::set_num_threads(want);
}

}  // namespace edgerazor::runtime
