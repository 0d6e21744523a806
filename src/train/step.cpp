// Implements: precision choice and autocast, batch -> tensors, the QAD forward (student, teacher,
// objective), one micro-step, AdamW with HF decay groups, clipping and held-out evaluation.
// Legend: B batch, T tokens, C hidden, V vocab, L layers.
#include "edgerazor/train/step.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "edgerazor/distill/objective.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/quant/hooks.h"
#include "edgerazor/quant/weight_quantizer.h"
#include "edgerazor/runtime/runtime.h"
#include "edgerazor/train/fused_adamw.h"
#include "sum_of_squares.h"

namespace edgerazor::train {

// ---- precision --------------------------------------------------------------------------------

bool cpu_has_native_bf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string w;
    while (words >> w)
      if (w == "avx512_bf16" || w == "amx_bf16") return true;
    return false;  // the first CPU's flags decide
  }
  return false;
}

Precision resolve_precision(const std::string& precision, const std::string& device) {
  if (precision == "fp32") return Precision::fp32;
  if (precision == "bf16") return Precision::bf16;
  if (precision != "auto") throw std::invalid_argument("precision must be auto, bf16 or fp32, got '" + precision + "'");
  if (device.rfind("cuda", 0) == 0) return Precision::bf16;  // every GPU the trainer targets (Ampere+)
  return cpu_has_native_bf16() ? Precision::bf16 : Precision::fp32;
}

// libtorch 2.4 replaced the per-device setters by device-type arguments.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define ER_AUTOCAST_DEVICE_API 1
#endif

AutocastScope::AutocastScope(Precision precision, bool cuda) : cuda_(cuda) {
  if (precision != Precision::bf16) return;
  active_ = true;
#ifdef ER_AUTOCAST_DEVICE_API
  const auto type = cuda ? at::kCUDA : at::kCPU;
  previous_enabled_ = at::autocast::is_autocast_enabled(type);
  previous_dtype_ = static_cast<int>(at::autocast::get_autocast_dtype(type));
  at::autocast::set_autocast_dtype(type, at::kBFloat16);
  at::autocast::set_autocast_enabled(type, true);
#else
  if (cuda) {
    previous_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = static_cast<int>(at::autocast::get_autocast_gpu_dtype());
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    previous_enabled_ = at::autocast::is_cpu_enabled();
    previous_dtype_ = static_cast<int>(at::autocast::get_autocast_cpu_dtype());
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
#endif
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  const auto dtype = static_cast<at::ScalarType>(previous_dtype_);
#ifdef ER_AUTOCAST_DEVICE_API
  const auto type = cuda_ ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_enabled(type, previous_enabled_);
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (cuda_) {
    at::autocast::set_enabled(previous_enabled_);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(previous_enabled_);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

// ---- batches and the forward pass -------------------------------------------------------------

StepBatch to_tensors(const data::Batch& batch, const at::Device& device) {
  const int64_t B = batch.batch_size, T = batch.seq_len;
  if (B <= 0 || T <= 0 || batch.input_ids.size() != static_cast<size_t>(B * T) ||
      batch.labels.size() != static_cast<size_t>(B * T))
    throw std::runtime_error("data batch of " + std::to_string(B) + "x" + std::to_string(T) +
                             " rows does not match its arrays");
  // To a GPU through pinned (page-locked) host memory, so the copy is a DMA that overlaps the
  // host's work; the caching host allocator keeps the pinned buffer until the copy has run.
  const bool gpu = device.is_cuda();
  const auto wrap = [&](const std::vector<int64_t>& v) {
    const at::Tensor host = at::from_blob(const_cast<int64_t*>(v.data()), {B, T}, at::kLong);
    if (gpu) return host.pin_memory().to(device, /*non_blocking=*/true);
    return host.clone();
  };
  StepBatch out;
  out.input_ids = wrap(batch.input_ids);
  out.labels = wrap(batch.labels);
  out.real_tokens = batch.real_tokens();
  out.label_tokens = batch.label_tokens();
  if (batch.attention_mask.size() == static_cast<size_t>(B * T) && out.real_tokens < B * T)
    out.attention_mask = wrap(batch.attention_mask);
  return out;
}

namespace {

// One model's outputs as the objective wants them: the lm_head input (after its A8 hook) and the
// weight the lm_head uses, so CE and logit KD run chunk by chunk without (B, T, V) logits.
distill::ModelOutputs run_model(model::CausalLMImpl& m, const StepBatch& batch, bool hidden, int64_t chunk_size) {
  model::ForwardOptions fo;
  fo.attention_mask = batch.attention_mask;
  fo.output_hidden_states = hidden;
  fo.compute_logits = false;
  distill::ModelOutputs out;
  const at::Tensor h = m.model->forward(batch.input_ids, fo, hidden ? &out.hidden_states : nullptr);  // (B, T, C)
  if (chunk_size > 0) {
    out.final_hidden = quant::quantize_input(*m.lm_head, h);
    out.lm_head_weight = m.lm_head->weight;  // quantized values inside QuantizedWeightsScope
  } else {
    out.logits = m.logits_from_hidden(h);  // (B, T, V)
  }
  return out;
}

}  // namespace

distill::LossOutput compute_loss(const StepModels& models, const StepBatch& batch) {
  const int64_t chunk = models.objective->options.chunk_size;
  distill::ModelOutputs student = run_model(*models.student, batch, models.hidden_states, chunk);
  distill::ModelOutputs teacher;
  if (models.teacher) {
    torch::NoGradGuard no_grad;
    teacher = run_model(*models.teacher, batch, models.hidden_states, chunk);
  }
  return models.objective->forward(student, teacher, batch.labels);
}

distill::LossOutput forward_backward(const StepModels& models, const StepBatch& batch, double loss_scale,
                                     Precision precision) {
  quant::QuantizedWeightsScopeOptions scope_options;
  scope_options.defer_embedding_rows = true;  // the model zoo looks tokens up through quant::embedding_lookup
  quant::QuantizedWeightsScope quantized(*models.student, scope_options);  // forward AND backward see Q(w)
  distill::LossOutput out;
  {
    AutocastScope autocast(precision, batch.input_ids.is_cuda());
    out = compute_loss(models, batch);
  }
  (out.total * loss_scale).backward();
  out.total = out.total.detach();
  return out;
}

// ---- optimizer --------------------------------------------------------------------------------

bool takes_weight_decay(const std::string& name, const config::TrainSection& t) {
  if (t.decay_norm_and_bias) return true;
  for (const char* s : {"bias", "layernorm", "rmsnorm", ".norm", "_norm"})  // HF: not decayed
    if (name.find(s) != std::string::npos) return false;
  return true;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(model::CausalLMImpl& student, const config::TrainSection& t) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& [name, p] : student.unique_named_parameters()) {
    if (!p.requires_grad()) continue;
    (takes_weight_decay(name, t) ? decay : no_decay).push_back(p);
  }
  const auto options = [&](double wd) {
    return torch::optim::AdamWOptions(t.lr).betas({t.beta1, t.beta2}).eps(t.eps).weight_decay(wd);
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(options(t.weight_decay)));
  if (!no_decay.empty()) groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(options(0.0)));
  return std::make_unique<FusedAdamW>(std::move(groups), options(t.weight_decay));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

void release_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined()) p.mutable_grad() = at::Tensor();
}

double clip_gradients(const std::vector<at::Tensor>& params, double max_norm, torch::optim::Optimizer* optimizer) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (max_norm <= 0) {
    double sq = 0;
    for (const auto& g : grads) sq += sum_of_squares_f64(g);
    return std::sqrt(sq);
  }
  if (grads.empty()) return 0.0;
  at::NoGradGuard no_grad;
  // torch::nn::utils::clip_grad_norm_'s ops (norms in the gradients' dtype), so that the coefficient
  // is the one it would multiply by.
  std::vector<at::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(g.norm(2.0));
  const at::Tensor total = norms.size() == 1 ? norms[0] : at::stack(norms).norm(2.0);
  const at::Tensor coef = at::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  if (auto* fused = dynamic_cast<FusedAdamW*>(optimizer)) {
    fused->scale_gradients_next_step(coef.item<double>());
  } else {
    for (auto& g : grads) g.mul_(coef);
  }
  return total.item<double>();
}

double clip_gradients(model::CausalLMImpl& student, double max_norm, torch::optim::Optimizer* optimizer) {
  std::vector<at::Tensor> params;
  for (const auto& [name, p] : student.unique_named_parameters()) params.push_back(p);
  return clip_gradients(params, max_norm, optimizer);
}

// ---- evaluation -------------------------------------------------------------------------------

EvalResult evaluate(model::CausalLMImpl& m, data::DataLoader& loader, int64_t max_batches, const at::Device& device,
                    Precision precision, int64_t chunk_size) {
  const bool was_training = m.is_training();
  m.eval();
  distill::DistillObjectiveOptions ce_only;
  ce_only.loss_task_alpha = 1.0;
  ce_only.chunk_size = chunk_size;
  distill::DistillObjective ce(ce_only);
  torch::NoGradGuard no_grad;
  quant::QuantizedWeightsScope quantized(m);
  double sum = 0;
  int64_t tokens = 0;
  loader.reset_eval();
  data::Batch b;
  // max_batches batches of a single process: the same rows (units) on any number of ranks, each
  // rank taking its interleaved share of them; the trainer sums the ranks' token-weighted losses.
  const uint64_t units = static_cast<uint64_t>(max_batches) * static_cast<uint64_t>(loader.batch_size());
  while (loader.next_eval(b, units)) {
    runtime::adapt_threads();
    const StepBatch batch = to_tensors(b, device);
    // Next-token targets of this batch: labels[:, 1:] that are not ignored.
    const int64_t n = batch.labels.narrow(1, 1, batch.labels.size(1) - 1).ne(data::kIgnoreIndex).sum().item<int64_t>();
    if (n == 0) continue;
    AutocastScope autocast(precision, device.is_cuda());
    StepModels models{&m, nullptr, ce.get(), false};
    const auto out = compute_loss(models, batch);
    sum += out.total.item<double>() * static_cast<double>(n);
    tokens += n;
  }
  loader.reset_eval();
  if (was_training) m.train();
  EvalResult r;
  r.tokens = tokens;
  r.loss = tokens ? sum / static_cast<double>(tokens) : std::nan("");
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace edgerazor::train
