// Implements: metrics.jsonl writing (with resume truncation) and the progress line.
#include "edgerazor/train/metrics.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"

namespace edgerazor::train {

MetricsLog::MetricsLog(const std::string& path, int64_t keep_through_step) : path_(path) {
  {
    std::vector<std::string> kept;
    {
      std::ifstream in(path);
      if (!in && std::filesystem::exists(path))
        throw FormatError(path, "cannot read the metrics log to resume it");
      std::string line;
      while (std::getline(in, line)) {
        try {
          const auto j = nlohmann::json::parse(line);
          if (j.value("step", int64_t{0}) <= keep_through_step) kept.push_back(line);
        } catch (const nlohmann::json::exception&) {
          // a line cut short by a kill: drop it
        }
      }
    }
    // The history is replaced only by a complete, synced copy: a failed write (disk full, ulimit
    // -f) keeps the original and stops the run.
    const std::string tmp = path + ".tmp";
    files::track_temporary(tmp);
    std::string reason;
    std::FILE* out = std::fopen(tmp.c_str(), "wb");
    bool ok = out != nullptr;
    for (size_t i = 0; ok && i < kept.size(); ++i)
      ok = std::fwrite(kept[i].data(), 1, kept[i].size(), out) == kept[i].size() && std::fputc('\n', out) != EOF;
    ok = ok && std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
    if (!ok) reason = files::write_error_reason();
    if (out != nullptr && std::fclose(out) != 0 && reason.empty()) reason = files::write_error_reason();
    if (reason.empty() && std::rename(tmp.c_str(), path.c_str()) != 0) reason = files::write_error_reason();
    files::untrack_temporary(tmp);
    if (!reason.empty()) {
      std::remove(tmp.c_str());
      throw FormatError(tmp, "cannot rewrite the metrics log for the resume (" + reason + "); " + path +
                                 " is unchanged");
    }
  }
  file_ = std::fopen(path.c_str(), "ab");
  if (!file_) throw FormatError(path, "cannot open metrics log for appending");
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

MetricsLog::MetricsLog(MetricsLog&& other) noexcept : file_(other.file_), path_(std::move(other.path_)) {
  other.file_ = nullptr;
}

MetricsLog& MetricsLog::operator=(MetricsLog&& other) noexcept {
  if (this != &other) {
    if (file_) std::fclose(file_);
    file_ = other.file_;
    path_ = std::move(other.path_);
    other.file_ = nullptr;
  }
  return *this;
}

void MetricsLog::write(const std::string& type, int64_t step, const Scalars& values) {
  if (!file_) return;
  nlohmann::ordered_json j;
  j["type"] = type;
  j["step"] = step;
  for (const auto& [k, v] : values) {
    if (std::isfinite(v)) j[k] = v;
    else j[k] = std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");  // JSON has no NaN
  }
  const std::string line = j.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw FormatError(path_, "cannot append to the metrics log: " + files::write_error_reason());
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof(buf), "%lds", s);
  else if (s < 3600) std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof(buf), "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  return buf;
}

std::string progress_line(int64_t step, int64_t total, double loss, const Scalars& parts, double lr,
                          double tokens_per_s, double eta_seconds) {
  std::ostringstream out;
  char buf[256];
  out << "step " << step << "/" << total;
  std::snprintf(buf, sizeof(buf), " | loss %.4f", loss);
  out << buf;
  if (!parts.empty()) {
    out << " (";
    for (size_t i = 0; i < parts.size(); ++i) {
      std::snprintf(buf, sizeof(buf), "%s%s %.4f", i ? ", " : "", parts[i].first.c_str(), parts[i].second);
      out << buf;
    }
    out << ")";
  }
  std::snprintf(buf, sizeof(buf), " | lr %.2e | %.0f tok/s | ETA ", lr, tokens_per_s);
  out << buf << format_duration(eta_seconds);
  return out.str();
}

}  // namespace edgerazor::train
