// Implements: Progress (edgerazor/core/progress.h).
#include "edgerazor/core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace edgerazor {

namespace {
constexpr int kBarWidth = 30;
constexpr double kPlainLineSeconds = 10.0;
}  // namespace

Progress::Progress(std::string unit, int64_t total)
    : unit_(std::move(unit)), total_(total), terminal_(isatty(STDERR_FILENO) == 1),
      last_time_(std::chrono::steady_clock::now()) {}

std::string Progress::line(int64_t done, const std::string& detail) const {
  std::string s;
  if (total_ > 0) {
    const int64_t filled = std::min<int64_t>(kBarWidth, kBarWidth * done / total_);
    s = "[" + std::string(static_cast<size_t>(filled), '=') + std::string(static_cast<size_t>(kBarWidth - filled), ' ') +
        "] " + std::to_string(done) + "/" + std::to_string(total_) + " " + unit_;
  } else {
    s = std::to_string(done) + " " + unit_;
  }
  if (!detail.empty()) s += ", " + detail;
  return s;
}

void Progress::update(int64_t done, const std::string& detail) {
  last_done_ = done;
  last_detail_ = detail;
  if (terminal_) {
    std::fprintf(stderr, "\r%s\033[K", line(done, detail).c_str());
    std::fflush(stderr);
    drawn_ = true;
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  const bool tenth = total_ > 0 && (last_written_ < 0 || 10 * done / total_ > 10 * last_written_ / total_);
  const bool slow = std::chrono::duration<double>(now - last_time_).count() >= kPlainLineSeconds;
  if (!(tenth || slow || (total_ > 0 && done >= total_))) return;
  std::fprintf(stderr, "%s\n", line(done, detail).c_str());
  std::fflush(stderr);
  last_written_ = done;
  last_time_ = now;
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (terminal_) {
    if (drawn_) std::fprintf(stderr, "\n");
  } else if (last_done_ >= 0 && last_written_ != last_done_) {
    std::fprintf(stderr, "%s\n", line(last_done_, last_detail_).c_str());
  }
  std::fflush(stderr);
}

}  // namespace edgerazor
