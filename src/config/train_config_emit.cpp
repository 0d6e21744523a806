// Implements: the resolved run config as YAML (edgerazor-train --check, <run>/config.yaml) and the
// learning-rate schedules (HF semantics, spec distillation.md §8.3).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "edgerazor/config/train_config.h"

namespace edgerazor::config {
namespace {

// The shortest text that reads back as the same double (2e-05, not 2.0000000000000002e-05).
std::string num(double v) {
  char buf[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // stays a float when read back
  return s;
}

void emit_sources(YAML::Emitter& out, const char* key, const std::vector<data::DataSource>& sources, bool weights) {
  out << YAML::Key << key << YAML::Value;
  if (sources.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const auto& s : sources) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << s.name;
    out << YAML::Key << "paths" << YAML::Value << YAML::Flow << s.paths;
    if (weights) out << YAML::Key << "weight" << YAML::Value << num(s.weight);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void emit_loss(YAML::Emitter& out, const distill::DistillLossOptions& l) {
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << l.name;
  out << YAML::Key << "loss_type" << YAML::Value << distill::to_string(l.loss_type);
  out << YAML::Key << "loss_function" << YAML::Value << distill::to_string(l.loss_function);
  out << YAML::Key << "alpha" << YAML::Value << num(l.alpha);
  out << YAML::Key << "temperature" << YAML::Value << num(l.temperature);
  out << YAML::Key << "use_entropy" << YAML::Value << l.use_entropy;
  out << YAML::Key << "padding_id" << YAML::Value << l.padding_id;
  out << YAML::Key << "confidence_k" << YAML::Value << l.confidence_k;
  out << YAML::Key << "reduction" << YAML::Value << distill::to_string(l.reduction);
  out << YAML::Key << "layer_index" << YAML::Value << YAML::Flow << l.layer_index;
  out << YAML::Key << "layer_index_adaptive_metric" << YAML::Value << distill::to_string(l.layer_index_adaptive_metric);
  out << YAML::Key << "layer_index_adaptive_topk" << YAML::Value << l.layer_index_adaptive_topk;
  out << YAML::Key << "layer_index_adaptive_source" << YAML::Value
      << (l.layer_index_adaptive_source == distill::LayerSource::teacher ? "teacher" : "student");
  const char* component = l.self_relation_distill_component == distill::RelationComponent::key     ? "key"
                          : l.self_relation_distill_component == distill::RelationComponent::value ? "value"
                                                                                                   : "both";
  out << YAML::Key << "self_relation_distill_component" << YAML::Value << component;
  out << YAML::Key << "mask_alignment" << YAML::Value << distill::to_string(l.mask_alignment);
  out << YAML::EndMap;
}

}  // namespace

std::string to_yaml(const TrainConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "run" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.run.name;
  out << YAML::Key << "output_dir" << YAML::Value << c.run.output_dir;
  out << YAML::Key << "seed" << YAML::Value << c.run.seed;
  out << YAML::EndMap;

  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "teacher" << YAML::Value << c.model.teacher;
  out << YAML::Key << "student" << YAML::Value << c.model.student;
  out << YAML::EndMap;

  if (c.quantization) {
    // Expanded: the preset's select/function/overrides are written out, so the preset key itself
    // is left out (re-reading it would apply its overrides twice).
    YAML::Node q = YAML::Load(to_yaml(*c.quantization));
    q.remove("preset");
    out << YAML::Key << "quantization" << YAML::Value << YAML::BeginMap;
    for (const auto& kv : q) out << YAML::Key << kv.first << YAML::Value << kv.second;
    out << YAML::EndMap;
  }

  if (c.distillation) {
    const auto& d = *c.distillation;
    out << YAML::Key << "distillation" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "loss_task_alpha" << YAML::Value << num(d.loss_task_alpha);
    out << YAML::Key << "padding_id" << YAML::Value << d.padding_id;
    out << YAML::Key << "losses" << YAML::Value << YAML::BeginSeq;
    for (const auto& l : d.losses) emit_loss(out, l);
    out << YAML::EndSeq << YAML::EndMap;
  }

  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  emit_sources(out, "sources", c.data.sources, true);
  emit_sources(out, "eval_sources", c.data.eval_sources, false);
  out << YAML::Key << "seq_len" << YAML::Value << c.data.seq_len;
  out << YAML::Key << "packing" << YAML::Value << c.data.packing;
  out << YAML::Key << "pad_id" << YAML::Value << c.data.pad_id;
  out << YAML::Key << "seed" << YAML::Value << c.data.seed;
  out << YAML::Key << "shuffle" << YAML::Value << c.data.shuffle;
  out << YAML::EndMap;

  const TrainSection& t = c.train;
  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "optimizer" << YAML::Value << t.optimizer;
  out << YAML::Key << "lr" << YAML::Value << num(t.lr);
  out << YAML::Key << "beta1" << YAML::Value << num(t.beta1);
  out << YAML::Key << "beta2" << YAML::Value << num(t.beta2);
  out << YAML::Key << "eps" << YAML::Value << num(t.eps);
  out << YAML::Key << "weight_decay" << YAML::Value << num(t.weight_decay);
  out << YAML::Key << "decay_norm_and_bias" << YAML::Value << t.decay_norm_and_bias;
  out << YAML::Key << "lr_scheduler" << YAML::Value << t.lr_scheduler;
  out << YAML::Key << "warmup_steps" << YAML::Value << t.warmup_steps;
  out << YAML::Key << "warmup_ratio" << YAML::Value << num(t.warmup_ratio);
  out << YAML::Key << "min_lr" << YAML::Value << num(t.min_lr);
  out << YAML::Key << "max_steps" << YAML::Value << t.max_steps;
  out << YAML::Key << "epochs" << YAML::Value << num(t.epochs);
  out << YAML::Key << "micro_batch_size" << YAML::Value << t.micro_batch_size;
  out << YAML::Key << "gradient_accumulation_steps" << YAML::Value << t.gradient_accumulation_steps;
  out << YAML::Key << "accumulation" << YAML::Value << t.accumulation;
  out << YAML::Key << "max_grad_norm" << YAML::Value << num(t.max_grad_norm);
  out << YAML::Key << "precision" << YAML::Value << t.precision;
  out << YAML::Key << "gradient_checkpointing" << YAML::Value << t.gradient_checkpointing;
  out << YAML::Key << "device" << YAML::Value << t.device;
  out << YAML::Key << "log_interval" << YAML::Value << t.log_interval;
  out << YAML::Key << "eval_interval" << YAML::Value << t.eval_interval;
  out << YAML::Key << "eval_batches" << YAML::Value << t.eval_batches;
  out << YAML::Key << "eval_at_start" << YAML::Value << t.eval_at_start;
  out << YAML::Key << "save_interval" << YAML::Value << t.save_interval;
  out << YAML::Key << "keep_last" << YAML::Value << t.keep_last;
  out << YAML::Key << "chunk_size" << YAML::Value << t.chunk_size;
  out << YAML::EndMap;

  if (!c.eval.tasks.empty() || c.eval.interval != 0) {
    out << YAML::Key << "eval" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "tasks" << YAML::Value << YAML::Flow << c.eval.tasks;
    out << YAML::Key << "interval" << YAML::Value << c.eval.interval;
    out << YAML::Key << "limit" << YAML::Value << c.eval.limit;
    out << YAML::Key << "batch_size" << YAML::Value << c.eval.batch_size;
    out << YAML::Key << "num_fewshot" << YAML::Value << c.eval.num_fewshot;
    out << YAML::EndMap;
  }

  out << YAML::Key << "distributed" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "backend" << YAML::Value << c.distributed.backend;
  out << YAML::Key << "nproc_per_node" << YAML::Value << c.distributed.nproc_per_node;
  out << YAML::Key << "sharding" << YAML::Value << c.distributed.sharding;
  out << YAML::EndMap;
  out << YAML::EndMap;
  std::string text = std::string(out.c_str()) + "\n";
  if (c.quantization && !c.quantization->preset.empty()) {  // a note where the preset went
    const size_t at = text.find("\nquantization:\n");
    if (at != std::string::npos)
      text.insert(at + 1, "# quantization: preset " + c.quantization->preset + ", expanded\n");
  }
  return text;
}

const std::vector<std::string>& lr_scheduler_names() {
  static const std::vector<std::string> names{"constant", "constant_with_warmup", "linear", "cosine",
                                              "cosine_with_min_lr"};
  return names;
}

int64_t warmup_steps(const TrainSection& train, int64_t total) {
  if (train.warmup_steps > 0) return train.warmup_steps;
  return static_cast<int64_t>(std::ceil(train.warmup_ratio * static_cast<double>(total)));
}

double lr_lambda(const std::string& schedule, int64_t step, int64_t warmup, int64_t total, double min_lr_ratio) {
  const double n = static_cast<double>(step);
  if (schedule == "constant") return 1.0;
  if (step < warmup) return n / static_cast<double>(std::max<int64_t>(1, warmup));
  if (schedule == "constant_with_warmup") return 1.0;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  if (schedule == "linear") return std::max(0.0, 1.0 - progress);
  const double cosine = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  if (schedule == "cosine") return cosine;
  if (schedule == "cosine_with_min_lr") return min_lr_ratio + (1.0 - min_lr_ratio) * cosine;
  return 1.0;  // unknown names never pass validation
}

}  // namespace edgerazor::config
