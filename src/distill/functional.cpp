// Distillation maths (spec distillation.md §3-§5): masks, reductions, KL family, gammas, CE, MSE,
// LAFD layer selection, attention / KV-relation helpers.
// Legend: B batch, T tokens, V vocab, C hidden, H heads, S keys.
#include "edgerazor/distill/functional.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace edgerazor::distill {
namespace {

at::ScalarType compute_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor upcast(const at::Tensor& t) { return t.to(compute_dtype(t)); }

void check_logits_pair(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 3, "distill: logits must be (B, T, V), got ", a.sizes());
  TORCH_CHECK(a.sizes() == b.sizes(), "distill: student logits ", a.sizes(),
              " and teacher logits ", b.sizes(), " differ");
}

double clamp_temperature(double t) { return std::max(t, kMinTemperature); }

}  // namespace

// ---- masks and reductions ---------------------------------------------------------------------

MaskAlignment resolve_alignment(MaskAlignment alignment, LossType type) {
  if (alignment != MaskAlignment::standard) return alignment;
  return type == LossType::logits ? MaskAlignment::next_token : MaskAlignment::same_token;
}

at::Tensor position_mask(const at::Tensor& labels, MaskAlignment alignment, int64_t padding_id) {
  TORCH_CHECK(labels.dim() == 2, "distill: labels must be (B, T), got ", labels.sizes());
  TORCH_CHECK(alignment != MaskAlignment::standard,
              "distill: resolve MaskAlignment::standard before position_mask");
  if (alignment == MaskAlignment::same_token) return labels.ne(padding_id);
  return next_token_targets(labels, padding_id).ne(padding_id);
}

at::Tensor next_token_targets(const at::Tensor& labels, int64_t padding_id) {
  TORCH_CHECK(labels.dim() == 2, "distill: labels must be (B, T), got ", labels.sizes());
  const int64_t tokens = labels.size(1);
  auto targets = at::full_like(labels, padding_id);
  if (tokens > 1) targets.narrow(1, 0, tokens - 1).copy_(labels.narrow(1, 1, tokens - 1));
  return targets;
}

at::Tensor reduction_weights(const at::Tensor& mask, int64_t batch, int64_t tokens,
                             Reduction reduction, at::ScalarType dtype) {
  TORCH_CHECK(reduction != Reduction::none, "distill: reduction 'none' has no token weights");
  const auto opts = at::TensorOptions().dtype(dtype);
  if (!mask.defined()) {
    if (reduction == Reduction::sum) return at::ones({batch, tokens}, opts);
    return at::full({batch, tokens}, 1.0 / static_cast<double>(batch * tokens), opts);
  }
  TORCH_CHECK(mask.dim() == 2 && mask.size(0) == batch && mask.size(1) == tokens,
              "distill: mask ", mask.sizes(), " does not match (B, T) = (", batch, ", ", tokens, ")");
  auto m = mask.to(opts.device(mask.device()));
  switch (reduction) {
    case Reduction::sum: return m;
    case Reduction::mean: return m / m.sum().clamp_min(1.0);
    case Reduction::batch_mean:
      return m / (m.sum(1, /*keepdim=*/true).clamp_min(1.0) * static_cast<double>(batch));
    case Reduction::none: break;
  }
  return m;
}

at::Tensor reduce_tokens(const at::Tensor& values, const at::Tensor& mask, Reduction reduction) {
  TORCH_CHECK(values.dim() == 2, "distill: per-token values must be (B, T), got ", values.sizes());
  if (reduction == Reduction::none) return mask.defined() ? values * mask.to(values.dtype()) : values;
  const auto w = reduction_weights(mask, values.size(0), values.size(1), reduction,
                                   values.scalar_type());
  return (values * w.to(values.device())).sum();
}

// ---- logit losses -----------------------------------------------------------------------------

at::Tensor kl_per_token(const at::Tensor& input_logits, const at::Tensor& target_logits,
                        double temperature) {
  check_logits_pair(input_logits, target_logits);
  const double t = clamp_temperature(temperature);
  const auto log_p = at::softmax(upcast(input_logits) / t, -1).clamp_min(kProbEps).log();
  const auto log_q = at::softmax(upcast(target_logits) / t, -1).clamp_min(kProbEps).log();
  // q = exp(log q): the clamped value weighs the sum, as in kl_div(log_target=true).
  return (log_q.exp() * (log_q - log_p)).sum(-1) * (t * t);
}

at::Tensor forward_kl(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                      const at::Tensor& mask, double temperature, Reduction reduction) {
  return reduce_tokens(kl_per_token(student_logits, teacher_logits, temperature), mask, reduction);
}

at::Tensor reverse_kl(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                      const at::Tensor& mask, double temperature, Reduction reduction) {
  return reduce_tokens(kl_per_token(teacher_logits, student_logits, temperature), mask, reduction);
}

at::Tensor teacher_entropy(const at::Tensor& teacher_logits) {
  const auto p = at::softmax(upcast(teacher_logits), -1);
  return -(p * (p + kProbEps).log()).sum(-1);
}

at::Tensor entropy_gamma(const at::Tensor& teacher_logits, const at::Tensor& mask,
                         int64_t confidence_k) {
  TORCH_CHECK(confidence_k >= 2, "distill: confidence_k must be >= 2, got ", confidence_k);
  const auto h = teacher_entropy(teacher_logits.detach());
  const auto mean_h = reduce_tokens(h, mask, Reduction::batch_mean);
  return (1.0 - mean_h / std::log(static_cast<double>(confidence_k))).clamp(0.0, 1.0);
}

at::Tensor confidence_gamma(const at::Tensor& teacher_logits, const at::Tensor& targets,
                            const at::Tensor& mask) {
  const auto dtype = compute_dtype(teacher_logits);
  if (!mask.defined()) return at::full({}, 0.5, teacher_logits.options().dtype(dtype));
  const auto p = at::softmax(upcast(teacher_logits.detach()), -1);
  // Ignored positions read index 0 and are then zeroed by the mask (spec §3.4).
  const auto index = at::where(mask, targets, at::zeros_like(targets)).unsqueeze(-1);
  const auto p_target = p.gather(-1, index).squeeze(-1);
  return reduce_tokens(p_target, mask, Reduction::batch_mean).clamp(0.0, 1.0);
}

at::Tensor confidence_kl(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                         const at::Tensor& mask, double temperature, Reduction reduction,
                         const at::Tensor& gamma) {
  const auto g = gamma.detach();
  return g * reverse_kl(student_logits, teacher_logits, mask, temperature, reduction) +
         (1.0 - g) * forward_kl(student_logits, teacher_logits, mask, temperature, reduction);
}

at::Tensor causal_lm_cross_entropy(const at::Tensor& logits, const at::Tensor& labels,
                                   int64_t padding_id) {
  TORCH_CHECK(logits.dim() == 3, "distill: logits must be (B, T, V), got ", logits.sizes());
  const auto targets = next_token_targets(labels, padding_id);
  const auto valid = targets.ne(padding_id);
  const auto log_p = at::log_softmax(upcast(logits), -1);
  const auto safe = at::where(valid, targets, at::zeros_like(targets)).unsqueeze(-1);
  const auto nll = -log_p.gather(-1, safe).squeeze(-1);
  const auto w = valid.to(nll.dtype());
  return (nll * w).sum() / w.sum().clamp_min(1.0);
}

// ---- feature losses ---------------------------------------------------------------------------

at::Tensor masked_mse(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& mask,
                      Reduction reduction) {
  TORCH_CHECK(student.sizes() == teacher.sizes(), "distill: MSE needs equal shapes, student ",
              student.sizes(), " vs teacher ", teacher.sizes());
  TORCH_CHECK(student.dim() == 3 || student.dim() == 4,
              "distill: MSE features must be (B, T, C) or (B, H, T, D), got ", student.sizes());
  const auto e = (upcast(student) - upcast(teacher)).pow(2);
  const int64_t batch = e.size(0);
  const int64_t features = e.dim() == 3 ? e.size(2) : e.size(1) * e.size(3);
  if (!mask.defined()) {
    switch (reduction) {
      case Reduction::sum: return e.sum();
      case Reduction::mean: return e.mean();
      case Reduction::batch_mean: return e.reshape({batch, -1}).mean(1).mean();
      case Reduction::none: return e;
    }
  }
  auto m = mask.to(e.dtype());                                  // (B, T)
  m = e.dim() == 3 ? m.unsqueeze(-1) : m.unsqueeze(1).unsqueeze(-1);
  const auto masked = e * m;
  if (reduction == Reduction::none) return masked;
  if (reduction == Reduction::sum) return masked.sum();
  const auto n_b = mask.to(e.dtype()).sum(1).clamp_min(1.0);    // (B)
  if (reduction == Reduction::mean) return masked.sum() / (n_b.sum() * static_cast<double>(features));
  const auto per_sample = masked.reshape({batch, -1}).sum(1) / (n_b * static_cast<double>(features));
  return per_sample.mean();
}

std::vector<int64_t> resolve_fixed_layers(const std::vector<std::string>& layer_index, int64_t n) {
  std::vector<int64_t> out;
  for (const auto& entry : layer_index) {
    int64_t j = 0;
    if (entry == "low") {
      j = n <= 1 ? 0 : 1;
    } else if (entry == "mid") {
      j = n / 2;
    } else if (entry == "high") {
      j = n - 1;
    } else if (entry == "adaptive") {
      continue;
    } else {
      j = std::stoll(entry);
      if (j < 0) j += n;
    }
    if (j >= 0 && j < n) out.push_back(j);
  }
  return out;
}

std::vector<double> layer_transition_metrics(const std::vector<at::Tensor>& states,
                                             LayerMetric metric) {
  std::vector<double> out;
  for (size_t i = 1; i < states.size(); ++i) {
    auto h = upcast(states[i].detach());
    auto prev = upcast(states[i - 1].detach());
    if (h.dim() == 3 && h.size(0) == 1) {  // the reference squeezes a batch of one
      h = h.squeeze(0);
      prev = prev.squeeze(0);
    }
    double m = 0.0;
    switch (metric) {
      case LayerMetric::cosine_similarity:
        m = at::cosine_similarity(h, prev, -1, 1e-8).mean().item<double>();
        break;
      case LayerMetric::l2: m = h.norm(2, -1).mean().item<double>(); break;
      case LayerMetric::variance: m = h.var(0, /*unbiased=*/true).mean().item<double>(); break;
    }
    out.push_back(m);
  }
  return out;
}

std::vector<int64_t> select_adaptive_layers(const std::vector<at::Tensor>& states,
                                            LayerMetric metric, int64_t topk) {
  const auto metrics = layer_transition_metrics(states, metric);
  std::vector<int64_t> order(metrics.size());
  std::iota(order.begin(), order.end(), 1);
  const bool ascending = metric == LayerMetric::cosine_similarity;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return ascending ? metrics[a - 1] < metrics[b - 1] : metrics[a - 1] > metrics[b - 1];
  });
  if (topk < static_cast<int64_t>(order.size())) order.resize(std::max<int64_t>(topk, 0));
  return order;
}

// ---- attention / KV relation ------------------------------------------------------------------

at::Tensor group_teacher_heads(const at::Tensor& teacher, int64_t student_heads) {
  TORCH_CHECK(teacher.dim() == 4, "distill: attention maps must be (B, H, T, S), got ", teacher.sizes());
  const int64_t ht = teacher.size(1);
  if (ht == student_heads) return teacher;
  if (student_heads <= 0 || ht < student_heads || ht % student_heads != 0) return {};
  const int64_t g = ht / student_heads;
  return teacher.reshape({teacher.size(0), student_heads, g, teacher.size(2), teacher.size(3)}).mean(2);
}

at::Tensor kl_per_row_4d(const at::Tensor& input_probs, const at::Tensor& target_probs) {
  TORCH_CHECK(input_probs.dim() == 4 && input_probs.sizes() == target_probs.sizes(),
              "distill: 4-D KL needs equal (B, H, T, S) maps, got ", input_probs.sizes(), " and ",
              target_probs.sizes());
  const auto log_p = upcast(input_probs).clamp_min(kProbEps).log();
  const auto log_q = upcast(target_probs).clamp_min(kProbEps).log();
  return (log_q.exp() * (log_q - log_p)).sum(-1);
}

at::Tensor reduce_rows_4d(const at::Tensor& values, const at::Tensor& mask, Reduction reduction) {
  TORCH_CHECK(values.dim() == 3, "distill: rows must be (B, H, T), got ", values.sizes());
  if (!mask.defined()) {
    if (reduction == Reduction::sum) return values.sum();
    if (reduction == Reduction::none) return values;
    return values.mean();
  }
  const auto m = mask.to(values.dtype()).unsqueeze(1);   // (B, 1, T)
  const auto masked = values * m;
  switch (reduction) {
    case Reduction::none: return masked;
    case Reduction::sum: return masked.sum();
    case Reduction::mean: return masked.sum() / m.sum().clamp_min(1.0);
    case Reduction::batch_mean: return (masked.sum(-1) / m.sum(-1).clamp_min(1.0)).mean();
  }
  return masked;
}

at::Tensor self_relation(const at::Tensor& states) {
  TORCH_CHECK(states.dim() == 4, "distill: KV states must be (B, H, T, D), got ", states.sizes());
  const auto x = upcast(states);
  const double scale = 1.0 / std::sqrt(static_cast<double>(states.size(3)));
  return at::softmax(at::matmul(x, x.transpose(-1, -2)) * scale, -1);
}

}  // namespace edgerazor::distill
