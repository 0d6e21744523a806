// Implements: GradientSynchronizer and broadcast_tensors (see edgerazor/distributed/grad_sync.h).
#include "edgerazor/distributed/grad_sync.h"

#include <ATen/ATen.h>

#include <chrono>
#include <mutex>
#include <string>
#include <utility>

#include "grad_ready_hooks.h"

namespace edgerazor::distributed {
namespace {

struct GroupKey {
  at::ScalarType dtype;
  at::Device device;
  bool operator==(const GroupKey& o) const { return dtype == o.dtype && device == o.device; }
};

// Every rank must pass the same tensors (count, shapes, dtypes): a different model on one rank
// would make the flat buckets disagree silently. One all_reduce(max) of (x, -x) compares them.
void check_same_layout(ProcessGroup& group, const std::vector<at::Tensor>& tensors, const std::string& what) {
  if (!group.distributed()) return;
  int64_t numel = 0;
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a over dtypes and shapes
  auto mix = [&hash](uint64_t v) { hash = (hash ^ v) * 1099511628211ULL; };
  for (const auto& t : tensors) {
    numel += t.numel();
    mix(static_cast<uint64_t>(t.scalar_type()));
    mix(static_cast<uint64_t>(t.dim()));
    for (int64_t s : t.sizes()) mix(static_cast<uint64_t>(s));
  }
  const int64_t count = static_cast<int64_t>(tensors.size());
  const int64_t h = static_cast<int64_t>(hash >> 2);
  auto v = at::tensor(std::vector<int64_t>{count, numel, h, -count, -numel, -h},
                      at::TensorOptions().dtype(at::kLong)).to(at::Device(group.device()));
  group.all_reduce_max(v, what + " layout check");
  auto c = v.cpu();
  const int64_t* p = c.data_ptr<int64_t>();
  if (p[0] != -p[3] || p[1] != -p[4] || p[2] != -p[5])
    throw DistributedError(what + ": the ranks disagree on the tensors (rank " + std::to_string(group.rank()) +
                           " has " + std::to_string(count) + " tensors with " + std::to_string(numel) +
                           " elements; the largest count among ranks is " + std::to_string(p[0]) +
                           "). Every rank must build the same model.");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct Bucket {
  std::vector<size_t> params;    // indices into State::params
  std::vector<int64_t> offsets;  // element offset of each parameter in `flat`
  int64_t numel = 0;
  at::Tensor flat;               // (numel,) gradient buffer, allocated at the first use
  int64_t pending = 0;           // overlap: parameters whose gradient is not ready yet
  bool launched = false;
  bool stale = false;            // a gradient changed after the launch
  PendingCollective work;
};

struct GradientSynchronizer::State {
  ProcessGroup& group;
  GradSyncOptions options;
  std::vector<at::Tensor> params;
  std::vector<size_t> bucket_of;   // parameter -> bucket
  std::vector<char> ready;         // parameter -> gradient seen since prepare_backward()
  std::vector<Bucket> buckets;
  std::mutex mutex;                // hooks may run on autograd worker threads
  bool armed = false;
  size_t next_launch = 0;          // buckets launch strictly in index order (same on all ranks)
  GradReadyHooks hooks;            // overlap: a bucket launches when its last gradient is in
  GradSyncStats stats;

  State(ProcessGroup& g, const GradSyncOptions& o) : group(g), options(o) {}

  void fill(Bucket& b) {
    if (!b.flat.defined()) b.flat = at::empty({b.numel}, params[b.params.front()].options().requires_grad(false));
    for (size_t k = 0; k < b.params.size(); ++k) {
      const at::Tensor& p = params[b.params[k]];
      auto slice = b.flat.narrow(0, b.offsets[k], p.numel());
      const at::Tensor& g = p.grad();
      if (g.defined())
        slice.view(g.sizes()).copy_(g);
      else
        slice.zero_();
    }
  }

  void launch(size_t index) {
    Bucket& b = buckets[index];
    fill(b);
    b.work = group.all_reduce_sum_async(b.flat, "gradient bucket " + std::to_string(index + 1) + " of " +
                                                    std::to_string(buckets.size()));
    b.launched = true;
  }

  void on_grad_ready(size_t param) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed) return;
    Bucket& b = buckets[bucket_of[param]];
    if (b.launched) {
      b.stale = true;
      return;
    }
    if (ready[param]) return;
    ready[param] = 1;
    --b.pending;
    at::NoGradGuard no_grad;
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) launch(next_launch++);
  }

  // Waits for in-flight buckets (used before re-arming and on destruction).
  void drain(bool rethrow) {
    for (auto& b : buckets) {
      if (b.work.valid()) {
        try {
          b.work.wait();
        } catch (...) {
          if (rethrow) throw;
        }
      }
      b.launched = b.stale = false;
    }
    next_launch = 0;
  }
};


GradientSynchronizer::GradientSynchronizer(ProcessGroup& group, std::vector<at::Tensor> parameters,
                                           const GradSyncOptions& options)
    : state_(std::make_unique<State>(group, options)) {
  State& s = *state_;
  TORCH_CHECK(options.bucket_bytes() > 0, "GradSyncOptions::bucket_bytes must be positive");
  for (auto& p : parameters)
    if (p.requires_grad()) s.params.push_back(p);
  check_same_layout(group, s.params, "gradient synchronizer");

  // Reverse registration order (the order backward produces gradients); one dtype/device per bucket.
  s.bucket_of.assign(s.params.size(), 0);
  std::vector<GroupKey> open_keys;  // the open bucket per (dtype, device)
  std::vector<size_t> open_index;
  for (size_t i = s.params.size(); i-- > 0;) {
    const at::Tensor& p = s.params[i];
    const GroupKey key{p.scalar_type(), p.device()};
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    size_t slot = open_keys.size();
    for (size_t k = 0; k < open_keys.size(); ++k)
      if (open_keys[k] == key) slot = k;
    if (slot < open_keys.size()) {
      const Bucket& b = s.buckets[open_index[slot]];
      if ((b.numel * static_cast<int64_t>(p.element_size())) + bytes > options.bucket_bytes()) {
        open_keys.erase(open_keys.begin() + static_cast<std::ptrdiff_t>(slot));
        open_index.erase(open_index.begin() + static_cast<std::ptrdiff_t>(slot));
        slot = open_keys.size();
      }
    }
    if (slot == open_keys.size()) {
      open_keys.push_back(key);
      open_index.push_back(s.buckets.size());
      s.buckets.emplace_back();
    }
    Bucket& b = s.buckets[open_index[slot]];
    b.params.push_back(i);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
    s.bucket_of[i] = open_index[slot];
    s.stats.bytes += bytes;
  }
  s.stats.buckets = static_cast<int64_t>(s.buckets.size());
  s.ready.assign(s.params.size(), 0);

  if (options.overlap() && group.distributed()) {
    s.hooks.install(s.params, [&s](size_t i) { s.on_grad_ready(i); }, "gradient synchronizer");
  }
}

GradientSynchronizer::~GradientSynchronizer() {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  s.armed = false;
  s.hooks.remove();
  s.drain(/*rethrow=*/false);
}

const GradSyncStats& GradientSynchronizer::stats() const { return state_->stats; }

void GradientSynchronizer::broadcast_parameters() {
  broadcast_tensors(state_->group, state_->params, 0, state_->options.bucket_bytes());
}

void GradientSynchronizer::prepare_backward() {
  State& s = *state_;
  if (!s.hooks.installed()) return;
  std::lock_guard<std::mutex> lock(s.mutex);
  s.drain(/*rethrow=*/true);  // armed twice without synchronize(): discard those results
  std::fill(s.ready.begin(), s.ready.end(), 0);
  for (auto& b : s.buckets) b.pending = static_cast<int64_t>(b.params.size());
  s.armed = true;
}

void GradientSynchronizer::synchronize() {
  State& s = *state_;
  if (!s.group.distributed()) return;
  const auto start = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(s.mutex);
  at::NoGradGuard no_grad;
  s.armed = false;
  const size_t n_params = s.params.size(), n_buckets = s.buckets.size();
  s.stats.launched_in_backward = static_cast<int64_t>(s.next_launch);
  while (s.next_launch < n_buckets) s.launch(s.next_launch++);

  // Which parameters have a gradient anywhere, and which buckets some rank must reduce again.
  auto flags = at::zeros({static_cast<int64_t>(n_params + n_buckets)}, at::TensorOptions().dtype(at::kFloat));
  float* f = flags.data_ptr<float>();
  for (size_t i = 0; i < n_params; ++i) f[i] = s.params[i].grad().defined() ? 1.0f : 0.0f;
  for (size_t b = 0; b < n_buckets; ++b) f[n_params + b] = s.buckets[b].stale ? 1.0f : 0.0f;
  auto agreed = flags.to(at::Device(s.group.device()));
  s.group.all_reduce_sum(agreed, "gradient presence");
  agreed = agreed.cpu();
  const float* a = agreed.data_ptr<float>();

  for (auto& b : s.buckets) b.work.wait();
  s.stats.relaunched = 0;
  for (size_t b = 0; b < n_buckets; ++b) {
    if (a[n_params + b] > 0) {
      s.launch(b);
      ++s.stats.relaunched;
    }
  }
  for (auto& b : s.buckets) {
    b.work.wait();
    b.flat.div_(s.group.world_size());
    for (size_t k = 0; k < b.params.size(); ++k) {
      at::Tensor& p = s.params[b.params[k]];
      if (a[b.params[k]] == 0) continue;  // no rank has a gradient: stays undefined
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      p.mutable_grad().copy_(b.flat.narrow(0, b.offsets[k], p.numel()).view(p.grad().sizes()));
    }
    b.launched = b.stale = false;
  }
  s.next_launch = 0;
  s.stats.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---------------------------------------------------------------------------------------------
void broadcast_tensors(ProcessGroup& group, const std::vector<at::Tensor>& tensors, int root, int64_t bucket_bytes) {
  if (!group.distributed() || tensors.empty()) return;
  check_same_layout(group, tensors, "broadcast of parameters");
  at::NoGradGuard no_grad;
  std::vector<char> done(tensors.size(), 0);
  for (size_t first = 0; first < tensors.size(); ++first) {
    if (done[first]) continue;
    const GroupKey key{tensors[first].scalar_type(), tensors[first].device()};
    // Greedy buckets of one dtype/device, in tensor order.
    std::vector<size_t> members;
    int64_t numel = 0;
    const int64_t elem = static_cast<int64_t>(tensors[first].element_size());
    for (size_t i = first; i < tensors.size(); ++i) {
      if (done[i] || !(GroupKey{tensors[i].scalar_type(), tensors[i].device()} == key)) continue;
      if (!members.empty() && (numel + tensors[i].numel()) * elem > bucket_bytes) break;
      members.push_back(i);
      numel += tensors[i].numel();
      done[i] = 1;
    }
    auto flat = at::empty({numel}, tensors[first].options().requires_grad(false));
    int64_t offset = 0;
    if (group.rank() == root)
      for (size_t i : members) {
        flat.narrow(0, offset, tensors[i].numel()).view(tensors[i].sizes()).copy_(tensors[i]);
        offset += tensors[i].numel();
      }
    group.broadcast(flat, root, "parameters");
    offset = 0;
    for (size_t i : members) {
      if (group.rank() != root)
        tensors[i].copy_(flat.narrow(0, offset, tensors[i].numel()).view(tensors[i].sizes()));
      offset += tensors[i].numel();
    }
  }
}

}  // namespace edgerazor::distributed
