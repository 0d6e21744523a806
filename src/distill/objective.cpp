// DistillObjective: task CE + weighted distillation losses (spec §6).
// Legend: B batch, T tokens, C hidden, V vocab, L layers.
#include "edgerazor/distill/objective.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <map>
#include <string>

#include "edgerazor/core/error.h"
#include "edgerazor/distill/functional.h"
#include "edgerazor/distill/logit_loss.h"
#include "edgerazor/distill/row_fused_loss.h"

namespace edgerazor::distill {
namespace {

using Parts = std::vector<std::pair<std::string, at::Tensor>>;

LogitsSource detached(const LogitsSource& s) {
  LogitsSource d;
  if (s.logits.defined()) d.logits = s.logits.detach();
  if (s.hidden.defined()) d.hidden = s.hidden.detach();
  if (s.weight.defined()) d.weight = s.weight.detach();
  return d;
}

std::vector<at::Tensor> detached(const std::vector<at::Tensor>& v) {
  std::vector<at::Tensor> out;
  for (const auto& t : v) out.push_back(t.detach());
  return out;
}

bool row_fused_enabled(const DistillObjectiveOptions& options) {
  static const bool env_off = [] {
    const char* env = std::getenv("EDGERAZOR_ROW_FUSED_LOSS");
    return env != nullptr && std::string(env) == "0";
  }();
  return options.row_fused && !env_off;
}

}  // namespace

LogitsSource ModelOutputs::logits_source() const {
  const at::Tensor hidden =
      final_hidden.defined() ? final_hidden
                             : (hidden_states.empty() ? at::Tensor() : hidden_states.back());
  if (lm_head_weight.defined() && hidden.defined()) return LogitsSource::from_hidden(hidden, lm_head_weight);
  return LogitsSource::from_logits(logits);
}

DistillObjectiveImpl::DistillObjectiveImpl(DistillObjectiveOptions options_)
    : options(std::move(options_)) {
  std::map<std::string, int> seen;
  for (const auto& loss : options.losses) {
    const auto problem = validate(loss);
    if (!problem.empty()) throw ConfigError("kd_configuration." + loss.name + "." + problem);
    if (++seen[loss.name] > 1)
      throw ConfigError("kd_configuration." + loss.name + ": duplicate loss name");
    if (loss.name == "task_ce" || loss.name == "distill")
      throw ConfigError("kd_configuration." + loss.name + ": name is reserved for the objective");
  }
  reset();
}

void DistillObjectiveImpl::reset() {
  logit_losses_.clear();
  feature_losses_.clear();
  relation_losses_.clear();
  for (size_t i = 0; i < options.losses.size(); ++i) {
    const auto& loss = options.losses[i];
    const std::string child = "loss_" + std::to_string(i);
    switch (loss.loss_type) {
      case LossType::logits: logit_losses_.push_back(i); break;
      case LossType::hidden_states:
        feature_losses_.emplace_back(i, register_module(child, FeatureDistillLoss(loss)));
        break;
      case LossType::attentions:
      case LossType::past_key_values:
        relation_losses_.emplace_back(i, register_module(child, RelationDistillLoss(loss)));
        break;
    }
  }
}

void DistillObjectiveImpl::pretty_print(std::ostream& stream) const {
  stream << "edgerazor::distill::DistillObjective(loss_task_alpha=" << options.loss_task_alpha
         << ", chunk_size=" << options.chunk_size << ", losses=[";
  for (size_t i = 0; i < options.losses.size(); ++i)
    stream << (i ? ", " : "") << options.losses[i].name << ":" << friendly_name(options.losses[i])
           << "*" << options.losses[i].alpha;
  stream << "])";
}

std::vector<std::pair<std::string, std::vector<int64_t>>> DistillObjectiveImpl::last_layer_choices()
    const {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& f : feature_losses_) out.emplace_back(options.losses[f.first].name, f.second->last_layers());
  for (const auto& r : relation_losses_) out.emplace_back(options.losses[r.first].name, r.second->last_layers());
  return out;
}

LossOutput DistillObjectiveImpl::forward(const ModelOutputs& student, const ModelOutputs& teacher,
                                         const at::Tensor& labels) {
  const size_t n_losses = options.losses.size();
  std::vector<LossOutput> per_loss(n_losses);
  at::Tensor ce = student.task_loss;
  at::Tensor carried;  // gradient-only term of the row-fused path (value 0)
  const bool want_ce = options.loss_task_alpha != 0.0 && !ce.defined();
  TORCH_CHECK(!want_ce || labels.defined(),
              "distill: the task CE needs labels (or pass ModelOutputs::task_loss)");

  // ---- CE + logit losses: one fused pass over the logits ----
  if (want_ce || !logit_losses_.empty()) {
    const auto s_src = student.logits_source();
    const auto t_src = detached(teacher.logits_source());
    TORCH_CHECK(s_src.defined(), "distill: student logits (or final_hidden + lm_head_weight) missing");
    TORCH_CHECK(logit_losses_.empty() || t_src.defined(),
                "distill: teacher logits (or final_hidden + lm_head_weight) missing");
    const bool have_ce = !ce.defined() && labels.defined();
    if (options.chunk_size <= 0) {   // plain autograd on whole logits (reference path)
      const auto s_logits = s_src.materialize();
      const auto t_logits = logit_losses_.empty() ? at::Tensor() : t_src.materialize();
      if (have_ce) ce = causal_lm_cross_entropy(s_logits, labels, options.padding_id);
      for (const size_t i : logit_losses_) {
        at::Tensor gamma;
        per_loss[i].total = logit_loss_unfused(options.losses[i], s_logits, t_logits, labels, &gamma);
        if (gamma.defined()) per_loss[i].parts.emplace_back(options.losses[i].name + ".gamma", gamma);
      }
    } else {
      const auto& main = s_src.has_logits() ? s_src.logits : s_src.hidden;
      const auto fopts =
          main.options().dtype(main.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
      const int64_t batch = s_src.batch(), tokens = s_src.tokens();
      FusedLogitRequest request;
      request.chunk_size = options.chunk_size;
      if (have_ce) {
        request.ce_targets = next_token_targets(labels, options.padding_id);
        request.ce_weights = reduction_weights(request.ce_targets.ne(options.padding_id), batch,
                                               tokens, Reduction::mean, c10::typeMetaToScalarType(fopts.dtype()));
      }
      for (const size_t i : logit_losses_)
        request.terms.push_back(make_logit_term(options.losses[i], labels, batch, tokens, fopts));
      if (logit_losses_.size() == 1 && row_fused_enabled(options) &&
          row_fused_supported(s_src, t_src, request)) {
        // Gradient computed in forward: the returned values are detached and `carried` brings
        // the gradient of loss_task_alpha * CE + alpha * loss into the total.
        const auto& o = options.losses[logit_losses_[0]];
        const double alpha_ce = options.loss_task_alpha;
        const auto r = row_fused_losses(s_src, t_src, request, [&](double stat) {
          const double gamma = logit_term_gamma(o, stat, labels.defined());
          return RowFusedCoefficients{alpha_ce, o.alpha * (1.0 - gamma), o.alpha * gamma};
        });
        if (have_ce) ce = r.ce;
        per_loss[logit_losses_[0]].total = finish_logit_term(o, r.forward, r.reverse, r.stat, labels.defined(),
                                                             per_loss[logit_losses_[0]].parts);
        carried = r.total - r.total.detach();
      } else {
        const auto r = fused_logit_losses(s_src, t_src, request);
        if (have_ce) ce = r.ce;
        for (size_t k = 0; k < logit_losses_.size(); ++k) {
          const size_t i = logit_losses_[k];
          per_loss[i].total = finish_logit_term(options.losses[i], r.forward[k], r.reverse[k],
                                                r.gamma_stat[k], labels.defined(), per_loss[i].parts);
        }
      }
    }
  }

  // ---- hidden-state and relation losses ----
  for (auto& f : feature_losses_) {
    TORCH_CHECK(!student.hidden_states.empty() && !teacher.hidden_states.empty(),
                "distill: loss '", options.losses[f.first].name,
                "' needs hidden_states from both models");
    per_loss[f.first] = f.second->forward(student.hidden_states, detached(teacher.hidden_states), labels);
  }
  for (auto& r : relation_losses_) {
    const auto& o = options.losses[r.first];
    if (o.loss_type == LossType::attentions) {
      TORCH_CHECK(!student.attentions.empty() && !teacher.attentions.empty(), "distill: loss '",
                  o.name, "' needs attentions from both models");
      per_loss[r.first] = r.second->forward(student.attentions, teacher.attentions, labels);
    } else {
      TORCH_CHECK(!student.key_values.empty() && !teacher.key_values.empty(), "distill: loss '",
                  o.name, "' needs key_values from both models");
      per_loss[r.first] = r.second->forward_key_values(student.key_values, teacher.key_values, labels);
    }
  }

  // ---- combine ----
  LossOutput out;
  at::Tensor distill;
  if (ce.defined()) out.parts.emplace_back("task_ce", ce.detach());
  for (size_t i = 0; i < n_losses; ++i) {
    const auto& value = per_loss[i].total;
    if (!value.defined()) continue;   // skipped (no usable layer)
    const auto& name = options.losses[i].name;
    const bool named = !per_loss[i].parts.empty() && per_loss[i].parts[0].first == name;
    if (!named) out.parts.emplace_back(name, value.detach());
    for (const auto& p : per_loss[i].parts) out.parts.emplace_back(p.first, p.second.detach());
    const auto weighted = value * options.losses[i].alpha;
    distill = distill.defined() ? distill + weighted : weighted;
  }
  if (!distill.defined()) {
    const auto& ref = ce.defined() ? ce : labels;
    distill = at::zeros({}, (ref.defined() ? ref.options() : at::TensorOptions()).dtype(at::kFloat));
  }
  out.parts.emplace_back("distill", distill.detach());
  out.total = ce.defined() && options.loss_task_alpha != 0.0 ? ce * options.loss_task_alpha + distill
                                                             : distill;
  if (carried.defined()) out.total = out.total + carried;
  return out;
}

}  // namespace edgerazor::distill
