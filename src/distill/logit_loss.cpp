// LogitDistillLoss and the per-loss pieces the objective shares (spec §3).
// Legend: B batch, T tokens, V vocab.
#include "edgerazor/distill/logit_loss.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

#include "edgerazor/core/error.h"
#include "edgerazor/distill/functional.h"

namespace edgerazor::distill {
namespace {

struct LabelView {
  at::Tensor mask;     // (B, T) bool or undefined (no labels)
  at::Tensor targets;  // (B, T) int64 ids the mask refers to
};

LabelView label_view(const DistillLossOptions& o, const at::Tensor& labels) {
  LabelView v;
  if (!labels.defined()) return v;
  const auto alignment = resolve_alignment(o.mask_alignment, LossType::logits);
  v.mask = position_mask(labels, alignment, o.padding_id);
  v.targets = alignment == MaskAlignment::same_token ? labels
                                                     : next_token_targets(labels, o.padding_id);
  return v;
}

bool is_confidence(const DistillLossOptions& o) {
  return o.loss_function == LossFunction::kld_confidence;
}

void check_options(const DistillLossOptions& o) {
  if (o.loss_type != LossType::logits)
    throw ConfigError(o.name + ".loss_type: LogitDistillLoss needs loss_type logits, got " +
                      to_string(o.loss_type));
  const auto problem = validate(o);
  if (!problem.empty()) throw ConfigError(o.name + "." + problem);
}

}  // namespace

FusedKLTerm make_logit_term(const DistillLossOptions& o, const at::Tensor& labels, int64_t batch,
                            int64_t tokens, const at::TensorOptions& float_options) {
  const auto view = label_view(o, labels);
  const auto dtype = c10::typeMetaToScalarType(float_options.dtype());
  FusedKLTerm term;
  term.temperature = o.temperature;
  term.weights = reduction_weights(view.mask, batch, tokens, o.reduction, dtype)
                     .to(float_options.device());
  term.forward = o.loss_function != LossFunction::kld_reverse;
  term.reverse = o.loss_function != LossFunction::kld_forward;
  if (is_confidence(o)) {
    if (o.use_entropy) {
      term.gamma_stat = FusedGammaStat::entropy;
    } else if (view.mask.defined()) {
      term.gamma_stat = FusedGammaStat::target_prob;
      term.gamma_targets = view.targets;
    }
    if (term.gamma_stat != FusedGammaStat::none)
      term.gamma_weights = reduction_weights(view.mask, batch, tokens, Reduction::batch_mean, dtype)
                               .to(float_options.device());
  }
  return term;
}

at::Tensor finish_logit_term(const DistillLossOptions& o, const at::Tensor& forward,
                             const at::Tensor& reverse, const at::Tensor& gamma_stat,
                             bool has_labels,
                             std::vector<std::pair<std::string, at::Tensor>>& parts) {
  switch (o.loss_function) {
    case LossFunction::kld_forward: return forward;
    case LossFunction::kld_reverse: return reverse;
    case LossFunction::mse: break;
    case LossFunction::kld_confidence: {
      at::Tensor gamma;
      if (o.use_entropy) {
        const double log_k = std::log(static_cast<double>(o.confidence_k));
        gamma = (1.0 - gamma_stat.detach() / log_k).clamp(0.0, 1.0);
      } else {
        gamma = has_labels ? gamma_stat.detach().clamp(0.0, 1.0) : at::full_like(forward, 0.5).detach();
      }
      parts.emplace_back(o.name + ".gamma", gamma);
      return gamma * reverse + (1.0 - gamma) * forward;
    }
  }
  TORCH_CHECK(false, "distill: compute_mse is not a logit loss");
}

double logit_term_gamma(const DistillLossOptions& o, double gamma_stat, bool has_labels) {
  switch (o.loss_function) {
    case LossFunction::kld_forward: return 0.0;
    case LossFunction::kld_reverse: return 1.0;
    case LossFunction::mse: break;
    case LossFunction::kld_confidence:
      if (o.use_entropy) return std::clamp(1.0 - gamma_stat / std::log(static_cast<double>(o.confidence_k)), 0.0, 1.0);
      return has_labels ? std::clamp(gamma_stat, 0.0, 1.0) : 0.5;
  }
  TORCH_CHECK(false, "distill: compute_mse is not a logit loss");
}

at::Tensor logit_loss_unfused(const DistillLossOptions& o, const at::Tensor& student_logits,
                              const at::Tensor& teacher_logits, const at::Tensor& labels,
                              at::Tensor* gamma) {
  const auto teacher = teacher_logits.detach();
  const auto view = label_view(o, labels);
  switch (o.loss_function) {
    case LossFunction::kld_forward:
      return forward_kl(student_logits, teacher, view.mask, o.temperature, o.reduction);
    case LossFunction::kld_reverse:
      return reverse_kl(student_logits, teacher, view.mask, o.temperature, o.reduction);
    case LossFunction::mse: break;
    case LossFunction::kld_confidence: {
      const auto g = o.use_entropy ? entropy_gamma(teacher, view.mask, o.confidence_k)
                                   : confidence_gamma(teacher, view.targets, view.mask);
      if (gamma != nullptr) *gamma = g;
      return confidence_kl(student_logits, teacher, view.mask, o.temperature, o.reduction, g);
    }
  }
  TORCH_CHECK(false, "distill: compute_mse is not a logit loss");
}

LogitDistillLossImpl::LogitDistillLossImpl(DistillLossOptions options_)
    : options(std::move(options_)) {
  check_options(options);
}

void LogitDistillLossImpl::pretty_print(std::ostream& stream) const {
  stream << "edgerazor::distill::LogitDistillLoss(" << friendly_name(options)
         << ", temperature=" << options.temperature << ", reduction=" << to_string(options.reduction)
         << ", mask_alignment=" << to_string(options.mask_alignment)
         << ", chunk_size=" << options.chunk_size << ")";
}

LossOutput LogitDistillLossImpl::forward(const LogitsSource& student, const LogitsSource& teacher,
                                         const at::Tensor& labels) {
  LossOutput out;
  if (options.chunk_size <= 0) {
    at::Tensor gamma;
    out.total = logit_loss_unfused(options, student.materialize(), teacher.materialize().detach(),
                                   labels, &gamma);
    out.parts.emplace_back(options.name, out.total.detach());
    if (gamma.defined()) out.parts.emplace_back(options.name + ".gamma", gamma.detach());
    return out;
  }
  const auto& main = student.has_logits() ? student.logits : student.hidden;
  const auto float_options =
      main.options().dtype(main.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
  FusedLogitRequest request;
  request.chunk_size = options.chunk_size;
  request.terms.push_back(
      make_logit_term(options, labels, student.batch(), student.tokens(), float_options));
  const auto r = fused_logit_losses(student, teacher, request);
  std::vector<std::pair<std::string, at::Tensor>> extra;
  out.total = finish_logit_term(options, r.forward[0], r.reverse[0], r.gamma_stat[0],
                                labels.defined(), extra);
  out.parts.emplace_back(options.name, out.total.detach());
  for (auto& p : extra) out.parts.emplace_back(p.first, p.second.detach());
  return out;
}

}  // namespace edgerazor::distill
