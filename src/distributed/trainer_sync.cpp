// Implements: C10dGradientSync and make_gradient_sync (see edgerazor/distributed/trainer_sync.h).
#include "edgerazor/distributed/trainer_sync.h"

#include <ATen/ATen.h>

namespace edgerazor::distributed {

C10dGradientSync::C10dGradientSync(std::shared_ptr<ProcessGroup> group, const GradSyncOptions& options)
    : group_(std::move(group)), options_(options) {}

C10dGradientSync::~C10dGradientSync() { synchronizer_.reset(); }  // before the group goes

int C10dGradientSync::rank() const { return group_->rank(); }
int C10dGradientSync::world_size() const { return group_->world_size(); }
const std::string& C10dGradientSync::device() const { return group_->device(); }
ProcessGroup& C10dGradientSync::group() { return *group_; }
const GradSyncStats* C10dGradientSync::stats() const { return synchronizer_ ? &synchronizer_->stats() : nullptr; }

void C10dGradientSync::synchronize(const std::vector<at::Tensor>& parameters) {
  bool same = synchronizer_ != nullptr && parameters.size() == params_.size();
  for (size_t i = 0; same && i < parameters.size(); ++i)
    same = parameters[i].unsafeGetTensorImpl() == params_[i].unsafeGetTensorImpl();
  if (!same) {
    synchronizer_.reset();
    params_ = parameters;
    synchronizer_ = std::make_unique<GradientSynchronizer>(*group_, params_, options_);
  }
  synchronizer_->synchronize();
}

void C10dGradientSync::average(std::vector<double>& values) {
  if (!group_->distributed() || values.empty()) return;
  auto t = at::tensor(values, at::TensorOptions().dtype(at::kDouble)).to(at::Device(group_->device()));
  group_->all_reduce_mean(t, "logged values");
  t = t.cpu();
  const double* p = t.data_ptr<double>();
  for (size_t i = 0; i < values.size(); ++i) values[i] = p[i];
}

void C10dGradientSync::barrier() { group_->barrier(); }

void C10dGradientSync::broadcast_parameters(const std::vector<at::Tensor>& parameters) {
  broadcast_tensors(*group_, parameters, 0, options_.bucket_bytes());
}

bool C10dGradientSync::any(bool flag) { return group_->any(flag); }

void C10dGradientSync::rank0_only(const std::string& what, const std::function<void()>& fn) {
  group_->rank0_only(what, fn);
}

std::vector<std::string> C10dGradientSync::gather_to_rank0(const std::string& value) {
  return group_->gather_to_rank0(value, "per-rank state");
}

std::shared_ptr<C10dGradientSync> make_gradient_sync(const std::string& backend, const std::string& device,
                                                     double timeout_s, const GradSyncOptions& options) {
  const DistEnv env = read_dist_env();
  if (!env.distributed()) return nullptr;
  auto group = std::make_shared<ProcessGroup>(
      env, ProcessGroupOptions().backend(backend).device(device).timeout_s(timeout_s));
  return std::make_shared<C10dGradientSync>(std::move(group), options);
}

}  // namespace edgerazor::distributed
