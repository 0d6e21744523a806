// Implements: the trainer's logs: metrics.jsonl in the run folder (one JSON object per line, every
// loss part by name) and the live progress line on the terminal. Torch-free.
//
//   {"type":"train","step":12,"lr":2e-05,"loss":3.41,"task_ce":2.9,"eakld":0.21,"lafd":0.05,...,
//    "grad_norm":0.8,"tokens":8192,"tokens_per_s":5120.4,"elapsed_s":18.2}
//   {"type":"eval","step":0,"eval_loss":3.9,"eval_ppl":49.4,"eval_tokens":4096,"teacher_eval_loss":1.3}
#pragma once

#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace edgerazor::train {

using Scalars = std::vector<std::pair<std::string, double>>;

class MetricsLog {
 public:
  MetricsLog() = default;
  // Opens <path> for appending after dropping the records of steps after keep_through_step (on a
  // resume: what the interrupted session wrote after its last checkpoint; -1: a fresh log).
  MetricsLog(const std::string& path, int64_t keep_through_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  MetricsLog(MetricsLog&& other) noexcept;
  MetricsLog& operator=(MetricsLog&& other) noexcept;

  // One line {"type": type, "step": step, <values in order>}; flushed at once. No-op when closed.
  void write(const std::string& type, int64_t step, const Scalars& values);

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
};

// "step 12/200 | loss 3.4100 (task_ce 2.9000, eakld 0.2100) | lr 2.00e-05 | 5120 tok/s | ETA 1m23s"
std::string progress_line(int64_t step, int64_t total, double loss, const Scalars& parts, double lr,
                          double tokens_per_s, double eta_seconds);
// 83 -> "1m23s", 4000 -> "1h06m", 7 -> "7s".
std::string format_duration(double seconds);

}  // namespace edgerazor::train
