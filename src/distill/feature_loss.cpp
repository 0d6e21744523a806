// Hidden-state MSE / LAFD and attention / KV-relation KL modules (spec §4, §5).
// Legend: B batch, T tokens, C hidden, L layers, H heads, D head dim.
#include "edgerazor/distill/feature_loss.h"
#include "edgerazor/core/log.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "edgerazor/core/error.h"
#include "edgerazor/distill/functional.h"

namespace edgerazor::distill {
namespace {

bool is_adaptive(const DistillLossOptions& o) {
  return std::find(o.layer_index.begin(), o.layer_index.end(), "adaptive") != o.layer_index.end();
}

void check_options(const DistillLossOptions& o, LossType expected_a, LossType expected_b) {
  if (o.loss_type != expected_a && o.loss_type != expected_b)
    throw ConfigError(o.name + ".loss_type: this loss module cannot run loss_type " +
                      to_string(o.loss_type));
  const auto problem = validate(o);
  if (!problem.empty()) throw ConfigError(o.name + "." + problem);
}

at::Tensor mask_for(const DistillLossOptions& o, const at::Tensor& labels) {
  if (!labels.defined()) return {};
  return position_mask(labels, resolve_alignment(o.mask_alignment, o.loss_type), o.padding_id);
}

// Fixed layers resolved against the student's count, then dropped when the teacher lacks them.
std::vector<int64_t> fixed_layers(const DistillLossOptions& o, int64_t n_student, int64_t n_teacher) {
  std::vector<int64_t> out;
  for (const int64_t j : resolve_fixed_layers(o.layer_index, n_student)) {
    if (j < n_teacher) out.push_back(j);
  }
  const int64_t asked = static_cast<int64_t>(o.layer_index.size());
  if (static_cast<int64_t>(out.size()) < asked)
    log_warning("distill: loss '" + o.name + "': " + std::to_string(asked - static_cast<int64_t>(out.size())) +
                " of " + std::to_string(asked) + " layer_index entries are outside the " +
                std::to_string(std::min(n_student, n_teacher)) + " available entries and are skipped");
  return out;
}

std::vector<at::Tensor> detached(const std::vector<at::Tensor>& v) {
  std::vector<at::Tensor> out;
  out.reserve(v.size());
  for (const auto& t : v) out.push_back(t.detach());
  return out;
}

LossOutput finish(const DistillLossOptions& o, const std::vector<at::Tensor>& values,
                  const std::vector<int64_t>& layers) {
  LossOutput out;
  if (values.empty()) {
    log_warning("distill: loss '" + o.name + "' has no usable layer and is skipped");
    return out;
  }
  out.total = values[0];
  for (size_t i = 1; i < values.size(); ++i) out.total = out.total + values[i];
  out.total = out.total / static_cast<double>(values.size());
  out.parts.emplace_back(o.name, out.total.detach());
  // Each chosen layer's own loss, named by its hidden-state index (0 = embedding output); the
  // trainer logs how often each layer was chosen beside it (".selected").
  std::vector<int64_t> named;
  for (size_t i = 0; i < layers.size() && i < values.size(); ++i) {
    if (std::find(named.begin(), named.end(), layers[i]) != named.end()) continue;
    named.push_back(layers[i]);
    out.parts.emplace_back(o.name + ".layer_" + std::to_string(layers[i]), values[i].detach());
  }
  return out;
}

}  // namespace

// ---- FeatureDistillLoss -----------------------------------------------------------------------

FeatureDistillLossImpl::FeatureDistillLossImpl(DistillLossOptions options_)
    : options(std::move(options_)) {
  check_options(options, LossType::hidden_states, LossType::hidden_states);
}

void FeatureDistillLossImpl::pretty_print(std::ostream& stream) const {
  stream << "edgerazor::distill::FeatureDistillLoss(" << friendly_name(options) << ", layers=[";
  for (size_t i = 0; i < options.layer_index.size(); ++i)
    stream << (i ? ", " : "") << options.layer_index[i];
  stream << "], reduction=" << to_string(options.reduction) << ")";
}

LossOutput FeatureDistillLossImpl::forward(const std::vector<at::Tensor>& student_states,
                                           const std::vector<at::Tensor>& teacher_states,
                                           const at::Tensor& labels) {
  const auto teacher = detached(teacher_states);
  const int64_t n_student = static_cast<int64_t>(student_states.size());
  const int64_t n_teacher = static_cast<int64_t>(teacher.size());
  if (is_adaptive(options)) {
    const bool from_teacher = options.layer_index_adaptive_source == LayerSource::teacher;
    last_layers_ = select_adaptive_layers(from_teacher ? teacher : detached(student_states),
                                          options.layer_index_adaptive_metric,
                                          options.layer_index_adaptive_topk);
    std::vector<int64_t> usable;
    for (const int64_t j : last_layers_)
      if (j < n_student && j < n_teacher) usable.push_back(j);
    last_layers_ = usable;
  } else {
    last_layers_ = fixed_layers(options, n_student, n_teacher);
  }
  const auto mask = mask_for(options, labels);
  std::vector<at::Tensor> values;
  for (const int64_t j : last_layers_)
    values.push_back(masked_mse(student_states[j], teacher[j], mask, options.reduction));
  return finish(options, values, last_layers_);
}

// ---- RelationDistillLoss ----------------------------------------------------------------------

RelationDistillLossImpl::RelationDistillLossImpl(DistillLossOptions options_)
    : options(std::move(options_)) {
  check_options(options, LossType::attentions, LossType::past_key_values);
}

void RelationDistillLossImpl::pretty_print(std::ostream& stream) const {
  stream << "edgerazor::distill::RelationDistillLoss(" << friendly_name(options)
         << ", reduction=" << to_string(options.reduction) << ")";
}

std::vector<int64_t> RelationDistillLossImpl::choose_layers(
    const std::vector<at::Tensor>& student_maps, const std::vector<at::Tensor>& teacher_maps) {
  const int64_t n_student = static_cast<int64_t>(student_maps.size());
  const int64_t n_teacher = static_cast<int64_t>(teacher_maps.size());
  if (!is_adaptive(options)) return fixed_layers(options, n_student, n_teacher);
  const bool from_teacher = options.layer_index_adaptive_source == LayerSource::teacher;
  // The tuples have no embedding entry, so index 0 can never be chosen (spec §4.3 [QUIRK]).
  std::vector<int64_t> out;
  for (const int64_t j : select_adaptive_layers(from_teacher ? teacher_maps : student_maps,
                                                options.layer_index_adaptive_metric,
                                                options.layer_index_adaptive_topk))
    if (j < n_student && j < n_teacher) out.push_back(j);
  return out;
}

LossOutput RelationDistillLossImpl::reduce_layers(const std::vector<at::Tensor>& student_maps,
                                                  const std::vector<at::Tensor>& teacher_maps,
                                                  const std::vector<int64_t>& layers,
                                                  const at::Tensor& labels) {
  const auto mask = mask_for(options, labels);
  std::vector<at::Tensor> values;
  std::vector<int64_t> used;
  for (const int64_t j : layers) {
    const auto& s = student_maps[j];
    const auto t = group_teacher_heads(teacher_maps[j].detach(), s.size(1));
    if (!t.defined()) {
      log_warning("distill: loss '" + options.name + "': layer " + std::to_string(j) + " teacher heads " +
                  std::to_string(teacher_maps[j].size(1)) + " do not group onto " + std::to_string(s.size(1)) +
                  " student heads; skipped");
      continue;
    }
    const auto fwd = [&] { return reduce_rows_4d(kl_per_row_4d(s, t), mask, options.reduction); };
    const auto rev = [&] { return reduce_rows_4d(kl_per_row_4d(t, s), mask, options.reduction); };
    at::Tensor value;
    switch (options.loss_function) {
      case LossFunction::kld_forward: value = fwd(); break;
      case LossFunction::kld_reverse: value = rev(); break;
      case LossFunction::mse: break;
      case LossFunction::kld_confidence: {
        // gamma from softmax applied again to the teacher rows (spec §5.1 [QUIRK]), per (b, h).
        const int64_t b = t.size(0), h = t.size(1), rows = t.size(2);
        const auto flat = t.reshape({b * h, rows, t.size(3)});
        const auto flat_mask = mask.defined() ? mask.repeat_interleave(h, 0) : at::Tensor();
        const auto gamma = options.use_entropy
                               ? entropy_gamma(flat, flat_mask, options.confidence_k)
                               : at::full({}, 0.5, t.options().dtype(at::kFloat));
        value = gamma * rev() + (1.0 - gamma) * fwd();
        break;
      }
    }
    values.push_back(value);
    used.push_back(j);
  }
  last_layers_ = used;
  return finish(options, values, used);
}

LossOutput RelationDistillLossImpl::forward(const std::vector<at::Tensor>& student_attentions,
                                            const std::vector<at::Tensor>& teacher_attentions,
                                            const at::Tensor& labels) {
  TORCH_CHECK(options.loss_type == LossType::attentions,
              "distill: attention maps given to a ", to_string(options.loss_type), " loss");
  const auto teacher = detached(teacher_attentions);
  return reduce_layers(student_attentions, teacher,
                       choose_layers(student_attentions, teacher), labels);
}

LossOutput RelationDistillLossImpl::forward_key_values(const std::vector<KeyValue>& student_kv,
                                                       const std::vector<KeyValue>& teacher_kv,
                                                       const at::Tensor& labels) {
  TORCH_CHECK(options.loss_type == LossType::past_key_values,
              "distill: key/value states given to a ", to_string(options.loss_type), " loss");
  std::vector<at::Tensor> student_values, teacher_values;
  for (const auto& kv : student_kv) student_values.push_back(kv.second);
  for (const auto& kv : teacher_kv) teacher_values.push_back(kv.second.detach());
  const auto layers = choose_layers(student_values, teacher_values);

  auto relation_loss = [&](bool keys) {
    std::vector<at::Tensor> s_maps(student_kv.size()), t_maps(teacher_kv.size());
    for (const int64_t j : layers) {
      s_maps[j] = self_relation(keys ? student_kv[j].first : student_kv[j].second);
      t_maps[j] = self_relation((keys ? teacher_kv[j].first : teacher_kv[j].second).detach());
    }
    return reduce_layers(s_maps, t_maps, layers, labels);
  };
  switch (options.self_relation_distill_component) {
    case RelationComponent::key: return relation_loss(true);
    case RelationComponent::value: return relation_loss(false);
    case RelationComponent::both: {
      auto v = relation_loss(false);
      auto k = relation_loss(true);
      if (!v.total.defined() || !k.total.defined()) return v.total.defined() ? v : k;
      LossOutput out;
      out.total = (v.total + k.total) / 2.0;
      out.parts.emplace_back(options.name, out.total.detach());
      for (size_t i = 1; i < v.parts.size(); ++i) out.parts.push_back(v.parts[i]);
      return out;
    }
  }
  return {};
}

}  // namespace edgerazor::distill
