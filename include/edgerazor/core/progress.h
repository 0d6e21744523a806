// Progress of a long tool step on stderr. On a terminal: one bar redrawn in place with '\r'.
// Anywhere else (a log file, a pipe, CI): plain lines, at most one per tenth of the work or per
// 10 seconds, and the last one, so logs stay readable and do not grow with every update.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace edgerazor {

class Progress {
 public:
  // `unit` names what is counted ("tokens", "prompts"); total may be 0 when unknown.
  Progress(std::string unit, int64_t total);
  // done of total, with an optional detail shown after it (e.g. "812.3 tok/s").
  void update(int64_t done, const std::string& detail = "");
  // Ends the bar's line (terminal); writes the last plain line if it was not written yet.
  void finish();
  ~Progress() { finish(); }

  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

 private:
  std::string line(int64_t done, const std::string& detail) const;

  std::string unit_;
  int64_t total_;
  bool terminal_;
  bool drawn_ = false, finished_ = false;
  int64_t last_done_ = -1, last_written_ = -1;
  std::string last_detail_;
  std::chrono::steady_clock::time_point last_time_;
};

}  // namespace edgerazor
