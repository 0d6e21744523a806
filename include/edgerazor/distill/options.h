// Distillation settings as plain, torch-free structs (spec distillation.md §2), so the YAML layer
// (torch-free edgerazor_base) can fill and validate them. Field names equal the reference's
// LossConfig / DistillConfig keys; our additions are marked [EXT].
//
// Names accepted for a loss (parse_loss_name): the reference registry names
//   compute_kld_forward | compute_kld_reverse | compute_kld_confidence | compute_mse
// their v1.0 aliases (spec §2.3)
//   kldf kld_forward -> forward, kldr kld_reverse -> reverse, kldc kld_confidence -> confidence,
//   fd compute_fd compute_state_distill -> mse
// and friendly names that also fix the loss type / entropy mode:
//   forward_kl, reverse_kl, eakld (confidence + use_entropy), cakld (confidence, no entropy),
//   mse (hidden_states), lafd (hidden_states, layer_index = [adaptive]).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgerazor::distill {

// Which model output a loss compares (reference `loss_type`).
enum class LossType { logits, hidden_states, attentions, past_key_values };

// Reference `loss_function`. kld_confidence is EAKLD with use_entropy, CAKLD without.
enum class LossFunction { kld_forward, kld_reverse, kld_confidence, mse };

// How per-token values become a scalar (spec §3.3, §4.1). `none` exists for the free functions
// only; modules need a scalar.
enum class Reduction { batch_mean, mean, sum, none };

// [EXT] Which label decides whether position t takes part in a loss.
//   standard:   logits at t predict token t+1, so logit losses (and CE) use labels[t+1];
//               hidden-state / attention / KV losses describe token t and use labels[t].
//   next_token: labels[t+1] for every loss type (last position never counts).
//   same_token: labels[t] for every loss type. This is the reference's behaviour (spec §3.5
//               [QUIRK]): it drops the last prompt position from KD and keeps the final one.
//               Needed only for numeric parity with the Python reference.
enum class MaskAlignment { standard, next_token, same_token };

// LAFD metric between consecutive hidden states (spec §4.3).
enum class LayerMetric { cosine_similarity, l2, variance };

// [EXT] Whose hidden states choose the LAFD layers: teacher (reference HEAD) or student
// (paper-era <= v1.2.4, spec §0 D1).
enum class LayerSource { teacher, student };

// [EXT] KV-relation component for past_key_values losses (spec §5.2).
enum class RelationComponent { key, value, both };

// One distillation loss (one `loss_<i>` block of the reference kd_configuration).
struct DistillLossOptions {
  std::string name = "loss";                     // [EXT] key used in logs
  LossType loss_type = LossType::logits;
  LossFunction loss_function = LossFunction::kld_reverse;
  double alpha = 0.5;                            // weight in the distill sum
  double temperature = 2.0;                      // logit KL only; values < 0.1 act as 0.1
  bool use_entropy = true;                       // kld_confidence: EAKLD (true) / CAKLD (false)
  int64_t padding_id = -100;                     // label value that masks a position
  int64_t confidence_k = 5;                      // EAKLD normaliser log(k); paper configs use 16
  Reduction reduction = Reduction::batch_mean;
  // Layers for hidden_states / attentions / past_key_values: each entry an integer ("3", "-1")
  // or one of low, mid, high, adaptive. "adaptive" anywhere selects LAFD. Empty = none.
  std::vector<std::string> layer_index;
  LayerMetric layer_index_adaptive_metric = LayerMetric::cosine_similarity;
  int64_t layer_index_adaptive_topk = 3;
  LayerSource layer_index_adaptive_source = LayerSource::teacher;   // [EXT]
  RelationComponent self_relation_distill_component = RelationComponent::value;
  MaskAlignment mask_alignment = MaskAlignment::standard;           // [EXT]
  // [EXT] Logit losses only, standalone LogitDistillLoss: tokens per chunk of the fused
  // memory-efficient path (peak extra memory O(chunk_size * V)); 0 = plain autograd on whole
  // logits. DistillObjective uses DistillObjectiveOptions::chunk_size instead.
  int64_t chunk_size = 256;
};

// The combined objective (spec §6): total = loss_task_alpha * CE + sum_i alpha_i * loss_i.
struct DistillObjectiveOptions {
  double loss_task_alpha = 1.0;
  std::vector<DistillLossOptions> losses;        // in config order
  int64_t chunk_size = 256;                      // [EXT] tokens per chunk for CE + logit losses
  int64_t padding_id = -100;                     // [EXT] label ignore value of the task CE
  // [EXT] CPU: CE + one T = 1 KL term through the row-fused kernel with the gradient computed in
  // forward (row_fused_loss.h) where it applies; false (or EDGERAZOR_ROW_FUSED_LOSS=0) keeps the
  // general chunked path. Same values to float rounding.
  bool row_fused = true;
};

// ---- names ------------------------------------------------------------------------------------

inline const char* to_string(LossType v) {
  switch (v) {
    case LossType::logits: return "logits";
    case LossType::hidden_states: return "hidden_states";
    case LossType::attentions: return "attentions";
    case LossType::past_key_values: return "past_key_values";
  }
  return "?";
}
inline const char* to_string(LossFunction v) {
  switch (v) {
    case LossFunction::kld_forward: return "compute_kld_forward";
    case LossFunction::kld_reverse: return "compute_kld_reverse";
    case LossFunction::kld_confidence: return "compute_kld_confidence";
    case LossFunction::mse: return "compute_mse";
  }
  return "?";
}
inline const char* to_string(Reduction v) {
  switch (v) {
    case Reduction::batch_mean: return "batch_mean";
    case Reduction::mean: return "mean";
    case Reduction::sum: return "sum";
    case Reduction::none: return "none";
  }
  return "?";
}
inline const char* to_string(MaskAlignment v) {
  switch (v) {
    case MaskAlignment::standard: return "standard";
    case MaskAlignment::next_token: return "next_token";
    case MaskAlignment::same_token: return "same_token";
  }
  return "?";
}
inline const char* to_string(LayerMetric v) {
  switch (v) {
    case LayerMetric::cosine_similarity: return "cosine_similarity";
    case LayerMetric::l2: return "l2";
    case LayerMetric::variance: return "variance";
  }
  return "?";
}

namespace detail {
[[noreturn]] inline void bad_name(const std::string& what, const std::string& got,
                                  const std::string& valid) {
  throw std::invalid_argument("unknown " + what + " '" + got + "' (expected one of: " + valid + ")");
}
}  // namespace detail

// The parse_* functions throw std::invalid_argument naming the bad value and the valid ones; the
// YAML layer turns that into a ConfigError with file:line:column.
inline LossType parse_loss_type(const std::string& s) {
  if (s == "logits") return LossType::logits;
  if (s == "hidden_states") return LossType::hidden_states;
  if (s == "attentions") return LossType::attentions;
  if (s == "past_key_values") return LossType::past_key_values;
  detail::bad_name("loss_type", s, "logits, hidden_states, attentions, past_key_values");
}
inline Reduction parse_reduction(const std::string& s) {
  if (s == "batch_mean") return Reduction::batch_mean;
  if (s == "mean") return Reduction::mean;
  if (s == "sum") return Reduction::sum;
  if (s == "none") return Reduction::none;
  detail::bad_name("reduction", s, "batch_mean, mean, sum, none");
}
inline MaskAlignment parse_mask_alignment(const std::string& s) {
  if (s == "standard") return MaskAlignment::standard;
  if (s == "next_token" || s == "shifted") return MaskAlignment::next_token;
  if (s == "same_token" || s == "unshifted" || s == "reference") return MaskAlignment::same_token;
  detail::bad_name("mask_alignment", s,
                   "standard, next_token (shifted), same_token (unshifted, reference)");
}
inline LayerMetric parse_layer_metric(const std::string& s) {
  if (s == "cosine_similarity" || s == "cosine") return LayerMetric::cosine_similarity;
  if (s == "l2") return LayerMetric::l2;
  if (s == "variance") return LayerMetric::variance;
  detail::bad_name("layer_index_adaptive_metric", s, "cosine_similarity, l2, variance");
}
inline LayerSource parse_layer_source(const std::string& s) {
  if (s == "teacher") return LayerSource::teacher;
  if (s == "student") return LayerSource::student;
  detail::bad_name("layer_index_adaptive_source", s, "teacher, student");
}
inline RelationComponent parse_relation_component(const std::string& s) {
  if (s == "key") return RelationComponent::key;
  if (s == "value") return RelationComponent::value;
  if (s == "both") return RelationComponent::both;
  detail::bad_name("self_relation_distill_component", s, "key, value, both");
}

// Applies a loss name (registry name, alias or friendly name, see the file comment) to `o`:
// always sets loss_function; friendly names also set use_entropy / loss_type / layer_index.
inline void apply_loss_name(DistillLossOptions& o, const std::string& s) {
  if (s == "compute_kld_forward" || s == "kldf" || s == "kld_forward") {
    o.loss_function = LossFunction::kld_forward;
  } else if (s == "compute_kld_reverse" || s == "kldr" || s == "kld_reverse") {
    o.loss_function = LossFunction::kld_reverse;
  } else if (s == "compute_kld_confidence" || s == "kldc" || s == "kld_confidence") {
    o.loss_function = LossFunction::kld_confidence;
  } else if (s == "compute_mse" || s == "fd" || s == "compute_fd" || s == "compute_state_distill") {
    o.loss_function = LossFunction::mse;
  } else if (s == "forward_kl") {
    o.loss_type = LossType::logits;
    o.loss_function = LossFunction::kld_forward;
  } else if (s == "reverse_kl") {
    o.loss_type = LossType::logits;
    o.loss_function = LossFunction::kld_reverse;
  } else if (s == "eakld" || s == "cakld") {
    o.loss_type = LossType::logits;
    o.loss_function = LossFunction::kld_confidence;
    o.use_entropy = (s == "eakld");
  } else if (s == "mse") {
    o.loss_type = LossType::hidden_states;
    o.loss_function = LossFunction::mse;
  } else if (s == "lafd") {
    o.loss_type = LossType::hidden_states;
    o.loss_function = LossFunction::mse;
    o.layer_index = {"adaptive"};
  } else {
    detail::bad_name("loss_function", s,
                     "compute_kld_forward, compute_kld_reverse, compute_kld_confidence, "
                     "compute_mse, kldf, kldr, kldc, fd, compute_fd, compute_state_distill, "
                     "forward_kl, reverse_kl, eakld, cakld, mse, lafd");
  }
}

// Defaults of the reference LossConfig with a friendly name applied; `name` is the log key.
inline DistillLossOptions loss_preset(const std::string& loss_name) {
  DistillLossOptions o;
  o.name = loss_name;
  apply_loss_name(o, loss_name);
  return o;
}

// The friendly name of a configured loss: forward_kl, reverse_kl, eakld, cakld, mse, lafd, or
// "<loss_type>:<function>" for attention / KV losses.
inline std::string friendly_name(const DistillLossOptions& o) {
  if (o.loss_type == LossType::logits) {
    switch (o.loss_function) {
      case LossFunction::kld_forward: return "forward_kl";
      case LossFunction::kld_reverse: return "reverse_kl";
      case LossFunction::kld_confidence: return o.use_entropy ? "eakld" : "cakld";
      case LossFunction::mse: return "logits:compute_mse";
    }
  }
  if (o.loss_type == LossType::hidden_states && o.loss_function == LossFunction::mse) {
    for (const auto& l : o.layer_index)
      if (l == "adaptive") return "lafd";
    return "mse";
  }
  return std::string(to_string(o.loss_type)) + ":" + to_string(o.loss_function);
}

// Returns an empty string when `o` is usable, else a message naming the offending key
// (spec §2.2/§2.3: KL functions for logits/attentions/past_key_values, compute_mse for
// hidden_states; a scalar reduction; k >= 2; topk >= 1; layer names from the fixed set).
inline std::string validate(const DistillLossOptions& o) {
  const bool is_kl = o.loss_function != LossFunction::mse;
  if (o.loss_type == LossType::hidden_states && is_kl)
    return "loss_function: hidden_states losses must use compute_mse";
  if (o.loss_type != LossType::hidden_states && !is_kl)
    return "loss_function: compute_mse only applies to loss_type hidden_states";
  if (o.reduction == Reduction::none)
    return "reduction: 'none' gives no scalar; use batch_mean, mean or sum";
  if (!(o.temperature > 0.0)) return "temperature: must be > 0";
  if (o.loss_function == LossFunction::kld_confidence && o.use_entropy && o.confidence_k < 2)
    return "confidence_k: must be >= 2 (gamma divides by log k)";
  if (o.layer_index_adaptive_topk < 1) return "layer_index_adaptive_topk: must be >= 1";
  if (o.loss_type != LossType::logits && o.layer_index.empty())
    return "layer_index: required for loss_type " + std::string(to_string(o.loss_type));
  for (const auto& l : o.layer_index) {
    if (l == "low" || l == "mid" || l == "high" || l == "adaptive") continue;
    size_t used = 0;
    try {
      (void)std::stoll(l, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != l.size())
      return "layer_index: '" + l + "' is neither an integer nor one of low, mid, high, adaptive";
  }
  return {};
}

}  // namespace edgerazor::distill
