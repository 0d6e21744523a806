// Implements: launch_local, pick_free_port, self_executable, remove_option
// (see edgerazor/distributed/launch.h). POSIX: fork/execvpe, pipes, poll, a self-pipe for signals.
#include "edgerazor/distributed/launch.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <thread>

#include "edgerazor/core/error.h"

extern char** environ;

namespace edgerazor::distributed {
namespace {

using Clock = std::chrono::steady_clock;

int g_signal_pipe = -1;  // write end of the self-pipe while launch_local runs

void on_signal(int signo) {
  const int saved = errno;
  if (g_signal_pipe >= 0) {
    const unsigned char b = static_cast<unsigned char>(signo);
    (void)!::write(g_signal_pipe, &b, 1);
  }
  errno = saved;
}

void write_all(int fd, const std::string& text) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

int cores_available() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

struct Stream {
  int fd = -1;
  bool is_stderr = false;
  std::string pending;  // bytes after the last '\n'
};

struct Child {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  Stream out, err;
};

// Exit status as a shell reports it: the code, or 128 + signal.
int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "exited with code " + std::to_string(exit_code(status));
}

class SignalForwarding {  // installs SIGINT/SIGTERM handlers for the lifetime of one launch
 public:
  SignalForwarding() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("launch: pipe failed");
    g_signal_pipe = fds_[1];
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalForwarding() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    g_signal_pipe = -1;
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int read_fd() const { return fds_[0]; }

 private:
  int fds_[2] = {-1, -1};
  struct sigaction old_int_ {}, old_term_ {};
};

}  // namespace

int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("pick_free_port: socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int e = errno;
    ::close(fd);
    throw std::runtime_error(std::string("pick_free_port: ") + std::strerror(e));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string self_executable() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw std::runtime_error(std::string("cannot read /proc/self/exe: ") + std::strerror(errno));
  return std::string(buf, static_cast<size_t>(n));
}

std::vector<std::string> remove_option(const std::vector<std::string>& args, const std::string& flag) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") {  // everything after "--" is positional
      out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    if (args[i] == flag) {
      ++i;  // and its value
      continue;
    }
    if (args[i].rfind(flag + "=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

std::optional<int> relaunch_as_workers(int nproc, int argc, const char* const* argv, const std::string& flag,
                                       const LaunchOptions& options) {
  if (nproc <= 1 || std::getenv("WORLD_SIZE") != nullptr) return std::nullopt;
  std::vector<std::string> args(argv + std::min(argc, 1), argv + argc);
  args = remove_option(args, flag);
  args.insert(args.begin(), self_executable());
  return launch_local(nproc, args, options);
}

int launch_local(int nproc, const std::vector<std::string>& argv, const LaunchOptions& options) {
  if (nproc < 1) throw ConfigError("--nproc-per-node must be at least 1 (got " + std::to_string(nproc) + ")");
  if (argv.empty() || argv[0].empty()) throw ConfigError("launch: no command to run");
  if (options.nnodes < 1) throw ConfigError("--nnodes must be at least 1");
  if (options.node_rank < 0 || options.node_rank >= options.nnodes)
    throw ConfigError("--node-rank " + std::to_string(options.node_rank) + " must be in [0, " +
                      std::to_string(options.nnodes) + ")");
  if (options.nnodes > 1 && options.master_port == 0)
    throw ConfigError("--master-port is required with --nnodes > 1 (every node must use the same port)");
  if (options.master_port < 0 || options.master_port > 65535)
    throw ConfigError("--master-port " + std::to_string(options.master_port) + " is not a TCP port");

  auto emit = options.on_line ? options.on_line : [](int rank, bool is_stderr, const std::string& line) {
    if (rank < 0)
      write_all(2, "edgerazor-launch: " + line + "\n");
    else
      write_all(is_stderr ? 2 : 1, "[rank " + std::to_string(rank) + "] " + line + "\n");
  };

  const int port = options.master_port != 0 ? options.master_port : pick_free_port();
  const int world = options.nnodes * nproc;

  // The children's environments, built before fork (setenv is not safe after fork in a
  // multi-threaded parent).
  std::vector<std::string> base_env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) base_env.emplace_back(*e);
  const bool threads_set = std::getenv("OMP_NUM_THREADS") != nullptr || std::getenv("EDGERAZOR_NUM_THREADS") != nullptr;
  auto child_env = [&](int local_rank) {
    std::map<std::string, std::string> set = {
        {"RANK", std::to_string(options.node_rank * nproc + local_rank)},
        {"WORLD_SIZE", std::to_string(world)},
        {"LOCAL_RANK", std::to_string(local_rank)},
        {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
        {"GROUP_RANK", std::to_string(options.node_rank)},
        {"MASTER_ADDR", options.master_addr},
        {"MASTER_PORT", std::to_string(port)},
    };
    if (!threads_set) set["OMP_NUM_THREADS"] = std::to_string(std::max(1, cores_available() / nproc));
    for (const auto& [k, v] : options.extra_env) set[k] = v;
    std::vector<std::string> env;
    for (const auto& entry : base_env) {
      const auto name = entry.substr(0, entry.find('='));
      if (set.count(name) == 0) env.push_back(entry);
    }
    for (const auto& [k, v] : set) env.push_back(k + "=" + v);
    return env;
  };

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  SignalForwarding signals;
  const pid_t launcher = ::getpid();
  std::vector<Child> children(static_cast<size_t>(nproc));
  int first_failure = 0;  // exit code to return
  bool stopping = false;
  Clock::time_point kill_deadline{};
  bool killed = false;
  int signals_seen = 0;

  auto stop_all = [&](int sig) {
    for (auto& c : children)
      if (c.running) ::kill(-c.pid, sig);
  };
  auto begin_stop = [&](const std::string& why, int code) {
    if (first_failure == 0) first_failure = code == 0 ? 1 : code;
    if (stopping) return;
    stopping = true;
    bool others = false;
    for (auto& c : children) others = others || c.running;
    emit(-1, true, others ? why + "; stopping the other ranks" : why);
    stop_all(SIGTERM);
    kill_deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(options.kill_grace_s * 1000));
  };

  for (int r = 0; r < nproc; ++r) {
    Child& c = children[static_cast<size_t>(r)];
    c.rank = options.node_rank * nproc + r;
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string("launch: pipe: ") + std::strerror(errno));
    std::vector<std::string> env_strings = child_env(r);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int e = errno;
      begin_stop("fork failed", 1);
      throw std::runtime_error(std::string("launch: fork: ") + std::strerror(e));
    }
    if (pid == 0) {  // child: only async-signal-safe calls until exec
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) ::_exit(128 + SIGTERM);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGINT, &dfl, nullptr);
      ::sigaction(SIGTERM, &dfl, nullptr);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      const int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::execvpe(args[0], args.data(), envp.data());
      const char* msg = "edgerazor-launch: cannot execute '";
      (void)!::write(2, msg, std::strlen(msg));
      (void)!::write(2, args[0], std::strlen(args[0]));
      (void)!::write(2, "': ", 3);
      const char* why = std::strerror(errno);
      (void)!::write(2, why, std::strlen(why));
      (void)!::write(2, "\n", 1);
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here: no race with an early kill(-pid)
    ::close(out[1]);
    ::close(err[1]);
    c.pid = pid;
    c.running = true;
    c.out = Stream{out[0], false, {}};
    c.err = Stream{err[0], true, {}};
  }

  auto flush_lines = [&](Child& c, Stream& s, bool at_eof) {
    size_t start = 0;
    for (size_t nl; (nl = s.pending.find('\n', start)) != std::string::npos; start = nl + 1)
      emit(c.rank, s.is_stderr, s.pending.substr(start, nl - start));
    s.pending.erase(0, start);
    if (at_eof && !s.pending.empty()) {
      emit(c.rank, s.is_stderr, s.pending);
      s.pending.clear();
    }
  };

  Clock::time_point all_exited{};
  bool any_running = true;
  for (;;) {
    // Poll the children's pipes and the signal pipe.
    std::vector<pollfd> fds;
    std::vector<std::pair<Child*, Stream*>> owners;
    for (auto& c : children)
      for (Stream* s : {&c.out, &c.err})
        if (s->fd >= 0) {
          fds.push_back(pollfd{s->fd, POLLIN, 0});
          owners.emplace_back(&c, s);
        }
    fds.push_back(pollfd{signals.read_fd(), POLLIN, 0});
    if (!any_running && owners.empty()) break;
    // After every child exited, a grandchild may still hold a pipe open: stop waiting after 2 s.
    if (!any_running && Clock::now() - all_exited > std::chrono::seconds(2)) break;
    const int ready = ::poll(fds.data(), fds.size(), 50);
    if (ready < 0 && errno != EINTR) throw std::runtime_error(std::string("launch: poll: ") + std::strerror(errno));
    for (size_t i = 0; ready > 0 && i < owners.size(); ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      auto [c, s] = owners[i];
      char buf[65536];
      const ssize_t n = ::read(s->fd, buf, sizeof(buf));
      if (n > 0) {
        s->pending.append(buf, static_cast<size_t>(n));
        flush_lines(*c, *s, false);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        flush_lines(*c, *s, true);
        ::close(s->fd);
        s->fd = -1;
      }
    }
    if (fds.back().revents & POLLIN) {
      unsigned char signo = 0;
      while (::read(signals.read_fd(), &signo, 1) == 1) {
        // The first signal is forwarded and the ranks get all the time they need (a trainer
        // finishes its step and writes a checkpoint); a second one kills them.
        const std::string name = strsignal(signo);
        if (killed) {
          // already sent SIGKILL: nothing more to do or say
        } else if (stopping && signals_seen == 0) {  // a rank failed and the others are being stopped
          emit(-1, true, "received " + name + " while stopping the ranks after a failure; killing them (SIGKILL)");
          stop_all(SIGKILL);
          killed = true;
        } else if (signals_seen == 0) {
          emit(-1, true, "received " + name + "; forwarding it to the ranks (send it again to kill them)");
          stop_all(signo);
        } else {
          emit(-1, true, "received " + name + " a second time; killing the ranks (SIGKILL)");
          stop_all(SIGKILL);
          killed = true;
        }
        ++signals_seen;
        stopping = true;
        if (first_failure == 0) first_failure = 128 + signo;
      }
    }
    // Reap.
    bool was_running = any_running;
    any_running = false;
    for (auto& c : children) {
      if (!c.running) continue;
      int status = 0;
      const pid_t r = ::waitpid(c.pid, &status, WNOHANG);
      if (r == c.pid) {
        c.running = false;
        c.status = status;
        if (exit_code(status) != 0 && !stopping)
          begin_stop("rank " + std::to_string(c.rank) + " (pid " + std::to_string(c.pid) + ") " + describe_exit(status),
                     exit_code(status));
        else if (exit_code(status) != 0 && first_failure == 0)
          first_failure = exit_code(status);
      } else if (r < 0 && errno == ECHILD) {
        c.running = false;
      }
      any_running = any_running || c.running;
    }
    if (was_running && !any_running) all_exited = Clock::now();
    if (stopping && kill_deadline != Clock::time_point{} && any_running && !killed && Clock::now() > kill_deadline) {
      emit(-1, true, "ranks still running " + std::to_string(options.kill_grace_s) + " s after SIGTERM; sending SIGKILL");
      stop_all(SIGKILL);
      killed = true;
    }
  }
  for (auto& c : children)
    for (Stream* s : {&c.out, &c.err})
      if (s->fd >= 0) {
        flush_lines(c, *s, true);
        ::close(s->fd);
      }
  return first_failure;
}

}  // namespace edgerazor::distributed
