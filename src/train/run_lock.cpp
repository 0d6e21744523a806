// Implements edgerazor/train/run_lock.h.
#include "edgerazor/train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "edgerazor/core/error.h"

namespace edgerazor::train {

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

RunFolderLock::RunFolderLock(RunFolderLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

RunFolderLock& RunFolderLock::operator=(RunFolderLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RunFolderLock lock_run_folder(const std::string& run_dir) {
  std::filesystem::create_directories(run_dir);
  const std::string path = (std::filesystem::path(run_dir) / ".lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw FormatError(path, std::string("cannot create the run lock: ") + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char holder[256] = {};
    const ssize_t n = ::pread(fd, holder, sizeof(holder) - 1, 0);
    ::close(fd);
    if (e != EWOULDBLOCK) throw FormatError(path, std::string("cannot lock the run folder: ") + std::strerror(e));
    std::string who = n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string("unknown pid");
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    throw ConfigError("", 0, 0, "run.output_dir",
                      "run folder " + run_dir + " is in use by another trainer (" + who +
                          "); wait for it to finish, or choose another run.name / run.output_dir");
  }
  char host[128] = {};
  ::gethostname(host, sizeof(host) - 1);
  const std::string me = "pid " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    // The lock holds even if the note about its holder could not be written.
  }
  RunFolderLock lock;
  lock.fd_ = fd;
  return lock;
}

}  // namespace edgerazor::train
