// An advisory lock on a run folder, held for a trainer's whole life, so that two edgerazor-train
// processes cannot write the same run (the second would overwrite the first's checkpoints and
// metrics while both report success). Torch-free.
//
// <run_dir>/.lock holds the holder's pid and host; the lock is flock(2) on it, so it goes away
// with the process however it ends (kill -9 included) and a stale file never blocks a new run.
#pragma once

#include <string>

namespace edgerazor::train {

class RunFolderLock {
 public:
  RunFolderLock() = default;
  ~RunFolderLock();
  RunFolderLock(RunFolderLock&& other) noexcept;
  RunFolderLock& operator=(RunFolderLock&& other) noexcept;
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

  bool held() const { return fd_ >= 0; }

 private:
  friend RunFolderLock lock_run_folder(const std::string& run_dir);
  int fd_ = -1;
};

// Creates run_dir if needed and takes its lock; ConfigError "run folder X is in use by another
// trainer (pid N on HOST)" when another process holds it.
RunFolderLock lock_run_folder(const std::string& run_dir);

}  // namespace edgerazor::train
