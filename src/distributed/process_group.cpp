// Implements: ProcessGroup and PendingCollective over c10d (see edgerazor/distributed/process_group.h).
//
// One TCPStore (rank 0 serves it) carries the rendezvous, rank0_only's status messages and the
// exit handshake; one c10d process group (Gloo or NCCL) carries the tensors. The c10d class
// hierarchy moved between LibTorch 1.13 (ProcessGroupGloo : ProcessGroup) and 2.x
// (ProcessGroupGloo : Backend); we hold the concrete backend through the common base.
#include "edgerazor/distributed/process_group.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

// Gloo when this LibTorch was built with it (its CMake targets define USE_C10D_GLOO). Neither the
// PyPI wheel nor the official zip ships Gloo's headers, so they come from Debian's libgloo-dev,
// another Gloo commit than the one compiled into libtorch_cpu (whose code is the one that runs;
// Debian's libgloo is never linked). That is sound only while this file touches Gloo as LibTorch's
// ProcessGroupGloo.hpp declares it and no further: Options::create and the constructor and device
// factories, which are out-of-line in libtorch_cpu, and shared_ptr/intrusive_ptr handles, so no
// Gloo class layout or inline Gloo code of the other version is compiled in here. Keep it so:
// use no gloo:: type or function directly. (cmake/TorchBackends.cmake requires the headers.)
#if defined(USE_C10D_GLOO) && __has_include(<gloo/config.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define ER_HAVE_GLOO 1
#else
#define ER_HAVE_GLOO 0
#endif

// NCCL only when this LibTorch was built with it (its CMake targets define USE_C10D_NCCL) and the
// NCCL headers are installed; the CPU build never sees these headers.
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>) && !defined(EDGERAZOR_NO_NCCL)
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define ER_HAVE_NCCL 1
#else
#define ER_HAVE_NCCL 0
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <thread>

#include "edgerazor/config/train_config.h"
#include "edgerazor/core/error.h"
#include "edgerazor/runtime/device.h"

namespace edgerazor::distributed {
namespace {

#if TORCH_VERSION_MAJOR >= 2
using Backend = c10d::Backend;
#else
using Backend = c10d::ProcessGroup;
#endif

// The cause's message without a C++ backtrace and without final punctuation (we append ". ...").
std::string message_of(std::exception_ptr error) {
  std::string text;
  try {
    std::rethrow_exception(error);
  } catch (const c10::Error& e) {
    text = e.what_without_backtrace();
  } catch (const std::exception& e) {
    text = e.what();
  } catch (...) {
    text = "unknown exception";
  }
  while (!text.empty() && (text.back() == '.' || text.back() == '!' || text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text;
}

std::string seconds_text(double s) {
  std::ostringstream out;
  out << s << " s";
  return out.str();
}

// The local address the kernel would use to reach `host`: the interface Gloo must bind so the
// other ranks (which reach us the same way) can connect. Empty when it cannot be determined.
std::string route_source_address(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return "";
  std::string out;
  for (addrinfo* a = found; a != nullptr && out.empty(); a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype, 0);
    if (fd < 0) continue;
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&  // UDP: no packet is sent
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      char text[INET6_ADDRSTRLEN] = {0};
      const void* raw = local.ss_family == AF_INET
                            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr)
                            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr);
      if (inet_ntop(local.ss_family, raw, text, sizeof(text)) != nullptr) out = text;
    }
    ::close(fd);
  }
  freeaddrinfo(found);
  return out;
}

std::string getenv_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' ? v : fallback;
}

}  // namespace

bool has_gloo() { return ER_HAVE_GLOO != 0; }
bool has_nccl() { return ER_HAVE_NCCL != 0; }

// ---------------------------------------------------------------------------------------------
struct PendingCollective::State {
  c10::intrusive_ptr<c10d::Work> work;  // null for a one-process group
  std::string context;                  // "all_reduce 'x' failed on rank 0 of 2 (gloo, timeout 30 s)"
  std::chrono::milliseconds timeout;
};

PendingCollective::PendingCollective() = default;
PendingCollective::PendingCollective(std::unique_ptr<State> state) : state_(std::move(state)) {}
PendingCollective::PendingCollective(PendingCollective&&) noexcept = default;
PendingCollective& PendingCollective::operator=(PendingCollective&&) noexcept = default;
PendingCollective::~PendingCollective() = default;

namespace {
[[noreturn]] void throw_collective_error(const std::string& context, std::exception_ptr cause) {
  throw DistributedError(context + ": " + message_of(cause) +
                         ". Another rank probably exited or stopped responding: see its output. "
                         "(The timeout is set by EDGERAZOR_DIST_TIMEOUT, in seconds.)");
}
}  // namespace

void PendingCollective::wait() {
  if (!state_) return;
  if (!state_->work) {  // a one-process group: done when started
    state_.reset();
    return;
  }
  try {
    state_->work->wait(state_->timeout);
  } catch (...) {
    auto context = state_->context;
    auto cause = std::current_exception();
    state_.reset();
    throw_collective_error(context, cause);
  }
  state_.reset();
}

// ---------------------------------------------------------------------------------------------
struct ProcessGroup::State {
  DistEnv env;
  std::string backend = "none";
  std::string device = "cpu";
  at::Device dev{at::kCPU};
  double timeout_s = kDefaultTimeoutSeconds;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Backend> group;
  int64_t rank0_calls = 0;
  bool failed = false;  // a collective failed: skip the exit handshake

  std::string context(const std::string& what) const {
    return what + " failed on " + describe(env) + " (" + backend + ", timeout " + seconds_text(timeout_s) + ")";
  }

  // Starts a collective; returns the handle (already-failed starts throw DistributedError).
  PendingCollective start(const std::string& what, const std::function<c10::intrusive_ptr<c10d::Work>()>& fn) {
    auto state = std::make_unique<PendingCollective::State>();
    state->context = context(what);
    state->timeout = timeout;
    if (group) {
      try {
        state->work = fn();
      } catch (...) {
        failed = true;
        throw_collective_error(state->context, std::current_exception());
      }
    }
    return PendingCollective(std::move(state));
  }

  void run(const std::string& what, const std::function<c10::intrusive_ptr<c10d::Work>()>& fn) {
    try {
      start(what, fn).wait();
    } catch (const DistributedError&) {
      failed = true;
      throw;
    }
  }
};

namespace {

void resolve_device(ProcessGroup::State& s, const ProcessGroupOptions& options) {
  const std::string& d = options.device();
  if (!config::is_device_spec(d))
    throw ConfigError("distributed device '" + d + "': expected cpu, cuda, cuda:N or auto");
  // Only the spelling is checked here: whether that GPU exists is for CUDA and NCCL to say when
  // the backend starts (their own errors, which name the device and the driver).
  const bool gpu = d == "cuda" || d.rfind("cuda:", 0) == 0 || (d == "auto" && runtime::cuda_device_count() > 0);
  if (!gpu)
    s.dev = at::Device(at::kCPU);
  else if (d.rfind("cuda:", 0) == 0)
    s.dev = at::Device(d);
  else
    s.dev = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(s.env.local_rank));
  s.device = s.dev.str();
}

void resolve_backend(ProcessGroup::State& s, const ProcessGroupOptions& options) {
  std::string b = options.backend();
  if (b == "auto") b = (s.dev.is_cuda() && has_nccl()) ? "nccl" : "gloo";
  if (b != "gloo" && b != "nccl")
    throw ConfigError("distributed backend '" + options.backend() + "': expected auto, gloo or nccl");
  if (b == "nccl" && !has_nccl())
    throw ConfigError("distributed backend 'nccl': this LibTorch was built without NCCL (use gloo)");
  if (b == "nccl" && !s.dev.is_cuda())
    throw ConfigError("distributed backend 'nccl' needs a CUDA device (got '" + s.device + "')");
  if (b == "gloo" && !has_gloo())
    throw ConfigError("distributed backend 'gloo': this LibTorch was built without Gloo");
  s.backend = b;
}

void connect_store(ProcessGroup::State& s) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(s.env.master_port);
  // torchrun (torch.distributed.elastic) already serves a TCPStore at MASTER_ADDR:MASTER_PORT and
  // says so with TORCHELASTIC_USE_AGENT_STORE=True: then every rank, rank 0 too, is its client.
  const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const bool use_agent_store = agent_store && (std::string(agent_store) == "True" || std::string(agent_store) == "1");
  options.isServer = s.env.rank == 0 && !use_agent_store;
  options.numWorkers = static_cast<std::size_t>(s.env.world_size);
  options.waitWorkers = false;  // we count the ranks ourselves below, with a clear error
  options.timeout = s.timeout;
  try {
    s.store = c10::make_intrusive<c10d::TCPStore>(s.env.master_addr, options);
  } catch (...) {
    const std::string role = s.env.rank == 0 ? "rank 0 serving the rendezvous store" : "connecting to rank 0's rendezvous store";
    throw DistributedError("rendezvous failed on " + describe(s.env) + " (" + role + ", timeout " +
                           seconds_text(s.timeout_s) + "): " + message_of(std::current_exception()) +
                           ". Check that every rank started with the same MASTER_ADDR/MASTER_PORT/WORLD_SIZE, "
                           "that the port is free on rank 0's host and reachable from the others.");
  }
  // Every rank waits until all WORLD_SIZE ranks have checked in.
  const std::string key = "edgerazor/joined";
  const auto deadline = std::chrono::steady_clock::now() + s.timeout;
  int64_t joined = 0;
  try {
    joined = s.store->add(key, 1);
    while (joined < s.env.world_size && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      joined = s.store->add(key, 0);
    }
  } catch (...) {
    throw DistributedError("rendezvous failed on " + describe(s.env) + ": " + message_of(std::current_exception()) +
                           ". Rank 0 (which serves the store) probably exited: see its output.");
  }
  if (joined < s.env.world_size)
    throw DistributedError("rendezvous failed on " + describe(s.env) + ": only " + std::to_string(joined) + " of " +
                           std::to_string(s.env.world_size) + " ranks joined within the timeout of " +
                           seconds_text(s.timeout_s) +
                           ". Check that every rank started with the same MASTER_ADDR/MASTER_PORT/WORLD_SIZE.");
}

void create_gloo(ProcessGroup::State& s) {
#if ER_HAVE_GLOO
  auto options = c10d::ProcessGroupGloo::Options::create(s.timeout);
  const std::string ifname = getenv_or("GLOO_SOCKET_IFNAME", "");
  if (!ifname.empty()) {
    std::stringstream names(ifname);
    for (std::string name; std::getline(names, name, ',');)
      if (!name.empty()) options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
  } else {
    const std::string local = route_source_address(s.env.master_addr, s.env.master_port);
    options->devices.push_back(local.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                             : c10d::ProcessGroupGloo::createDeviceForHostname(local));
  }
  options->threads = 2;
  s.group = c10::make_intrusive<c10d::ProcessGroupGloo>(s.store, s.env.rank, s.env.world_size, options);
#else
  (void)s;
#endif
}

void create_nccl(ProcessGroup::State& s) {
#if ER_HAVE_NCCL
  // Blocking wait: a timed-out or failed collective throws from wait() (a clear error) instead
  // of the watchdog aborting the process. Respect what the user set.
  setenv("NCCL_BLOCKING_WAIT", "1", 0);
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
  c10::cuda::set_device(s.dev.index());
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = s.timeout;
  s.group = c10::make_intrusive<c10d::ProcessGroupNCCL>(s.store, s.env.rank, s.env.world_size, options);
#else
  (void)s;
#endif
}

void create_backend(ProcessGroup::State& s) {
  if (s.backend == "nccl")
    create_nccl(s);
  else
    create_gloo(s);
}

}  // namespace

ProcessGroup::ProcessGroup(const ProcessGroupOptions& options) : ProcessGroup(read_dist_env(), options) {}

ProcessGroup::ProcessGroup(const DistEnv& env, const ProcessGroupOptions& options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.env = env;
  s.timeout_s = options.timeout_s() > 0 ? options.timeout_s()
                : env.timeout_s > 0     ? env.timeout_s
                                        : kDefaultTimeoutSeconds;
  if (!std::isfinite(s.timeout_s)) throw ConfigError("distributed timeout must be finite");
  s.timeout = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(s.timeout_s * 1000)));
  resolve_device(s, options);
  if (!env.distributed()) return;  // one process: no store, no sockets
  resolve_backend(s, options);
  connect_store(s);
  try {
    create_backend(s);
  } catch (const DistributedError&) {
    throw;
  } catch (...) {
    throw DistributedError("creating the " + s.backend + " process group failed on " + describe(env) +
                           " (timeout " + seconds_text(s.timeout_s) + "): " + message_of(std::current_exception()) +
                           ". Another rank probably exited during start-up: see its output.");
  }
}

void probe_backend(const std::string& backend, const std::string& device) {
  ProcessGroup::State s;
  s.timeout_s = 60;
  s.timeout = std::chrono::milliseconds(60000);
  resolve_device(s, ProcessGroupOptions().device(device));
  resolve_backend(s, ProcessGroupOptions().backend(backend));
  s.store = c10::make_intrusive<c10d::HashStore>();
  try {
    create_backend(s);
    std::vector<at::Tensor> tensors{at::ones({4}, at::TensorOptions().device(s.dev))};
    s.group->allreduce(tensors, c10d::AllreduceOptions())->wait(s.timeout);
    if (tensors[0].sum().item<double>() != 4.0) throw std::runtime_error("all_reduce over one rank changed the values");
  } catch (...) {
    throw DistributedError("the " + s.backend + " backend (compiled in) could not start on " + s.device + ": " +
                           message_of(std::current_exception()));
  }
}

ProcessGroup::~ProcessGroup() {
  State& s = *state_;
  // Exit handshake: rank 0 serves the store, so it waits (bounded) until every rank has checked
  // out before tearing the store down; otherwise a rank still reading its last rank0_only status
  // would see a closed connection. Skipped after a failure, when the peers may be gone.
  if (s.store && !s.failed && std::uncaught_exceptions() == 0) {
    try {
      s.store->set("edgerazor/exit/" + std::to_string(s.env.rank), std::vector<uint8_t>{1});
      if (s.env.rank == 0) {
        std::vector<std::string> keys;
        for (int r = 1; r < s.env.world_size; ++r) keys.push_back("edgerazor/exit/" + std::to_string(r));
        s.store->wait(keys, s.timeout);
      }
    } catch (...) {
      // A peer that died before checking out must not turn a clean exit into a crash.
    }
  }
  s.group.reset();
  s.store.reset();
}

int ProcessGroup::rank() const { return state_->env.rank; }
int ProcessGroup::world_size() const { return state_->env.world_size; }
int ProcessGroup::local_rank() const { return state_->env.local_rank; }
const DistEnv& ProcessGroup::env() const { return state_->env; }
const std::string& ProcessGroup::backend() const { return state_->backend; }
const std::string& ProcessGroup::device() const { return state_->device; }
double ProcessGroup::timeout_s() const { return state_->timeout_s; }

PendingCollective ProcessGroup::all_reduce_sum_async(at::Tensor& tensor, const std::string& what) {
  return state_->start("all_reduce '" + what + "'", [&] {
    std::vector<at::Tensor> tensors{tensor};
    return state_->group->allreduce(tensors, c10d::AllreduceOptions());
  });
}

void ProcessGroup::all_reduce_sum(at::Tensor& tensor, const std::string& what) {
  try {
    all_reduce_sum_async(tensor, what).wait();
  } catch (const DistributedError&) {
    state_->failed = true;
    throw;
  }
}

void ProcessGroup::all_reduce_mean(at::Tensor& tensor, const std::string& what) {
  TORCH_CHECK(at::isFloatingType(tensor.scalar_type()), "all_reduce_mean needs a floating tensor");
  all_reduce_sum(tensor, what);
  if (world_size() > 1) tensor.div_(world_size());
}

void ProcessGroup::all_reduce_max(at::Tensor& tensor, const std::string& what) {
  state_->run("all_reduce(max) '" + what + "'", [&] {
    std::vector<at::Tensor> tensors{tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::MAX;
    return state_->group->allreduce(tensors, options);
  });
}

void ProcessGroup::broadcast(at::Tensor& tensor, int root, const std::string& what) {
  state_->run("broadcast '" + what + "' from rank " + std::to_string(root), [&] {
    std::vector<at::Tensor> tensors{tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    return state_->group->broadcast(tensors, options);
  });
}

namespace {
void check_shard_layout(const at::Tensor& full, const at::Tensor& shard, int world, const std::string& what) {
  TORCH_CHECK(full.is_contiguous() && shard.is_contiguous() && full.numel() == shard.numel() * world &&
                  full.scalar_type() == shard.scalar_type(),
              what, ": the full tensor must hold world_size x the shard's elements, contiguous, same dtype (",
              full.numel(), " vs ", shard.numel(), " x ", world, ")");
}
}  // namespace

PendingCollective ProcessGroup::all_gather_async(at::Tensor& full, at::Tensor& shard, const std::string& what) {
  check_shard_layout(full, shard, world_size(), what);
  if (!distributed()) {
    if (full.data_ptr() != shard.data_ptr()) full.copy_(shard.view(full.sizes()));
    return state_->start("all_gather '" + what + "'", nullptr);
  }
  return state_->start("all_gather '" + what + "'", [&] {
    return state_->group->_allgather_base(full, shard, c10d::AllgatherOptions());
  });
}

void ProcessGroup::all_gather(at::Tensor& full, at::Tensor& shard, const std::string& what) {
  try {
    all_gather_async(full, shard, what).wait();
  } catch (const DistributedError&) {
    state_->failed = true;
    throw;
  }
}

void ProcessGroup::reduce_scatter_sum(at::Tensor& shard, at::Tensor& full, const std::string& what) {
  check_shard_layout(full, shard, world_size(), what);
  if (!distributed()) {
    if (full.data_ptr() != shard.data_ptr()) shard.copy_(full.view(shard.sizes()));
    return;
  }
  state_->run("reduce_scatter '" + what + "'", [&] {
    return state_->group->_reduce_scatter_base(shard, full, c10d::ReduceScatterOptions());
  });
}

void ProcessGroup::barrier(const std::string& what) {
  state_->run("barrier '" + what + "'", [&] { return state_->group->barrier(c10d::BarrierOptions()); });
}

bool ProcessGroup::any(bool flag, const std::string& what) {
  if (!distributed()) return flag;
  auto t = at::full({1}, flag ? 1.0 : 0.0, at::TensorOptions().dtype(at::kFloat).device(state_->dev));
  all_reduce_max(t, what);
  return t.item<float>() > 0.5f;
}

std::vector<std::string> ProcessGroup::gather_to_rank0(const std::string& value, const std::string& what) {
  State& s = *state_;
  if (!distributed()) return {value};
  const std::string prefix = "edgerazor/gather/" + std::to_string(s.rank0_calls++) + "/";
  try {
    if (!is_rank0()) {
      s.store->set(prefix + std::to_string(rank()), std::vector<uint8_t>(value.begin(), value.end()));
      return {};
    }
    std::vector<std::string> out{value};
    for (int r = 1; r < world_size(); ++r) {
      const std::string key = prefix + std::to_string(r);
      s.store->wait({key}, s.timeout);
      const auto bytes = s.store->get(key);
      out.emplace_back(bytes.begin(), bytes.end());
      s.store->deleteKey(key);
    }
    return out;
  } catch (...) {
    s.failed = true;
    throw DistributedError(s.context("gather '" + what + "'") + ": " + message_of(std::current_exception()) +
                           ". Another rank probably exited or stopped responding: see its output.");
  }
}

void ProcessGroup::rank0_only(const std::string& what, const std::function<void()>& fn) {
  State& s = *state_;
  std::exception_ptr own;
  if (is_rank0()) {
    try {
      fn();
    } catch (...) {
      own = std::current_exception();
    }
  }
  if (!distributed()) {
    if (own) std::rethrow_exception(own);
    return;
  }
  // Status through the store, not a collective: the others wait for rank 0's I/O without a
  // collective's timeout firing mid-write (the store wait has the same bound), and they learn
  // rank 0's message. Rank 0 dying mid-write closes the store, which fails their wait at once.
  const std::string key = "edgerazor/rank0_only/" + std::to_string(s.rank0_calls++);
  if (is_rank0()) {
    const std::string status = own ? "E" + message_of(own) : "K";
    try {
      s.store->set(key, std::vector<uint8_t>(status.begin(), status.end()));
    } catch (...) {
      s.failed = true;
      if (own) std::rethrow_exception(own);
      throw DistributedError(s.context("rank0_only '" + what + "'") + ": " + message_of(std::current_exception()));
    }
    if (own) std::rethrow_exception(own);
    return;
  }
  std::vector<uint8_t> status;
  try {
    s.store->wait({key}, s.timeout);
    status = s.store->get(key);
  } catch (...) {
    s.failed = true;
    throw DistributedError(s.context("waiting for rank 0 to finish '" + what + "'") + ": " +
                           message_of(std::current_exception()) +
                           ". Rank 0 probably exited or is stuck: see its output.");
  }
  if (!status.empty() && status[0] == 'E') {  // rank 0's own failure; the group is still healthy
    throw DistributedError("rank 0 failed during " + what + ": " + std::string(status.begin() + 1, status.end()));
  }
}

}  // namespace edgerazor::distributed
