// Implements edgerazor/core/files.h.
#include "edgerazor/core/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "edgerazor/core/error.h"

namespace edgerazor::files {
namespace fs = std::filesystem;
namespace {

// A fixed table the signal handler can walk without allocating or locking.
constexpr int kSlots = 64;
constexpr size_t kPathBytes = 4096;
struct Slot {
  std::atomic<bool> used{false};
  char path[kPathBytes] = {};
};
Slot g_slots[kSlots];

extern "C" void remove_temporaries_and_die(int sig) {
  for (auto& slot : g_slots)
    if (slot.used.load()) ::unlink(slot.path);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

struct FileId {
  dev_t dev;
  ino_t ino;
  bool operator==(const FileId& o) const { return dev == o.dev && ino == o.ino; }
};

bool file_id(const fs::path& p, FileId& id) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return false;
  id = {st.st_dev, st.st_ino};
  return true;
}

// True when `inner` is `outer` or lies below it (walking up inner's real parents).
bool is_inside(const fs::path& inner, const FileId& outer) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(inner, ec);
  if (ec) p = fs::absolute(inner);
  while (true) {
    FileId id{};
    if (file_id(p, id) && id == outer) return true;
    if (!p.has_parent_path() || p.parent_path() == p) return false;
    p = p.parent_path();
  }
}

}  // namespace

void track_temporary(const std::string& path) {
  if (path.size() >= kPathBytes) return;
  for (auto& slot : g_slots) {
    bool expected = false;
    if (slot.used.load() || !slot.used.compare_exchange_strong(expected, true)) continue;
    // Marked used before the path is complete: the handler may unlink a prefix at worst, a path
    // that does not exist (the table is filled before the temporary is created).
    std::memcpy(slot.path, path.c_str(), path.size() + 1);
    return;
  }
}

void untrack_temporary(const std::string& path) {
  for (auto& slot : g_slots)
    if (slot.used.load() && path == slot.path) {
      slot.path[0] = '\0';
      slot.used.store(false);
    }
}

void install_signal_cleanup() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_handler = remove_temporaries_and_die;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM}) {
      struct sigaction old {};
      sigaction(sig, nullptr, &old);
      if (old.sa_handler == SIG_DFL) sigaction(sig, &sa, nullptr);  // keep a caller's own handler
    }
    std::signal(SIGXFSZ, SIG_IGN);
    return true;
  }();
  (void)installed;
}

std::string write_error_reason() {
  const int e = errno;
  if (e == ENOSPC) return "no space left on device";
  if (e == EFBIG) return "file size limit exceeded (ulimit -f)";
  if (e == EDQUOT) return "disk quota exceeded";
  if (e == 0) return "write failed (disk full?)";
  return std::strerror(e);
}

void refuse_output_over_inputs(const std::string& output, const std::vector<std::string>& inputs,
                               const std::string& flag) {
  FileId out{};
  if (output.empty() || !file_id(output, out)) return;  // a new file cannot be an input
  const bool out_is_dir = fs::is_directory(output);
  for (const auto& input : inputs) {
    if (input.empty()) continue;
    FileId in{};
    if (!file_id(input, in)) continue;
    std::string why;
    if (in == out)
      why = "is the input " + input;
    else if (out_is_dir && is_inside(input, out))
      why = "holds the input " + input;
    if (!why.empty())
      throw ConfigError("", 0, 0, "", flag + " " + output + ": the output " + why +
                                          "; writing it would destroy what is being read. Choose another path");
  }
}

std::vector<std::string> model_folder_inputs(const std::string& dir) {
  std::vector<std::string> out = {dir};
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  static const char* kNames[] = {"config.json", "generation_config.json", "model.safetensors.index.json",
                                 "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                 "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model",
                                 "state.json", "manifest.json"};
  // A run folder keeps its checkpoints below: run/checkpoints/step_N/...
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it.depth() > 3) it.disable_recursion_pending();
    const auto& entry = *it;
    if (!entry.is_regular_file(ec)) continue;
    const std::string name = entry.path().filename().string();
    const std::string ext = entry.path().extension().string();
    bool read = ext == ".safetensors" || ext == ".jinja" || ext == ".yaml";
    for (const char* n : kNames) read = read || name == n;
    if (read) out.push_back(entry.path().string());
  }
  return out;
}

void require_regular_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw FormatError(path, "cannot open " + what + ": " + std::strerror(errno));
  if (S_ISREG(st.st_mode)) return;
  const char* kind = S_ISDIR(st.st_mode)   ? "a folder"
                     : S_ISCHR(st.st_mode) ? "a character device"
                     : S_ISBLK(st.st_mode) ? "a block device"
                     : S_ISFIFO(st.st_mode) ? "a pipe"
                                            : "not a plain file";
  throw FormatError(path, what + " must be a regular file, this is " + std::string(kind));
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  track_temporary(tmp);
  std::string reason;
  std::FILE* out = std::fopen(tmp.c_str(), "wb");
  bool ok = out != nullptr;
  ok = ok && std::fwrite(text.data(), 1, text.size(), out) == text.size();
  ok = ok && std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
  if (!ok) reason = write_error_reason();
  if (out != nullptr && std::fclose(out) != 0 && reason.empty()) reason = write_error_reason();
  if (reason.empty() && std::rename(tmp.c_str(), path.c_str()) != 0) reason = write_error_reason();
  if (!reason.empty()) {
    std::remove(tmp.c_str());
    untrack_temporary(tmp);
    throw FormatError(path, "cannot write: " + reason);
  }
  untrack_temporary(tmp);
}

}  // namespace edgerazor::files
