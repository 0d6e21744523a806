// Implements: YAML -> TrainConfig (every section), --set overrides on the YAML tree, and the value
// checks, each error naming file:line:col and the key path. Emission and schedules live in
// train_config_emit.cpp.
#include "edgerazor/config/train_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

#include "edgerazor/core/error.h"
#include "edgerazor/eval/task_config.h"
#include "quant_config_yaml.h"
#include "yaml_util.h"

namespace edgerazor::config {
namespace {

namespace fs = std::filesystem;
using yaml::Located;

// ------------------------------------------------------------------------------------------------
// Where each key was read from, so that checks made after typing still point at file:line:col.

class Locations {
 public:
  explicit Locations(std::string file) : file_(std::move(file)) {}
  void note(const Located& at) {
    if (!at.node.IsDefined()) return;
    const auto mark = at.node.Mark();
    if (mark.line >= 0) where_[at.path] = {mark.line + 1, mark.column + 1};
  }
  // The key's own location, else the nearest enclosing key that was read.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    std::string k = key;
    while (!k.empty()) {
      const auto it = where_.find(k);
      if (it != where_.end()) throw ConfigError(file_, it->second.first, it->second.second, key, message);
      const size_t cut = k.find_last_of(".[");
      k = cut == std::string::npos ? "" : k.substr(0, cut);
    }
    throw ConfigError(file_, 0, 0, key, message);
  }
  bool has(const std::string& key) const { return where_.count(key) > 0; }
  data::KeyLocation locate(const std::string& key) const {
    std::string k = key;
    while (!k.empty()) {
      const auto it = where_.find(k);
      if (it != where_.end()) return {file_, it->second.first, it->second.second};
      const size_t cut = k.find_last_of(".[");
      k = cut == std::string::npos ? "" : k.substr(0, cut);
    }
    return {file_, 0, 0};
  }

 private:
  std::string file_;
  std::map<std::string, std::pair<int, int>> where_;
};

// Reads `key` of `parent` with `convert` when present, remembering where it was.
template <typename T, typename F>
void read(Locations& loc, const Located& parent, const char* key, T& target, F convert) {
  const Located at = parent.child(key);
  if (!at.node.IsDefined()) return;
  loc.note(at);
  target = convert(at);
}

uint64_t as_seed(const Located& at) {
  const int64_t v = yaml::as_int(at);
  if (v < 0) at.fail("must be >= 0, got " + std::to_string(v));
  return static_cast<uint64_t>(v);
}

std::vector<std::string> as_path_list(const Located& at) {  // one string or a list of strings
  if (at.node.IsScalar()) return {yaml::as_string(at)};
  return yaml::as_string_list(at);
}

// ------------------------------------------------------------------------------------------------
// Sections

void read_run(Locations& loc, const Located& at, RunSection& run) {
  yaml::check_keys(at, {"name", "output_dir", "seed"});
  read(loc, at, "name", run.name, yaml::as_string);
  read(loc, at, "output_dir", run.output_dir, yaml::as_string);
  read(loc, at, "seed", run.seed, as_seed);
}

void read_model(Locations& loc, const Located& at, ModelSection& model) {
  yaml::check_keys(at, {"teacher", "student"});
  read(loc, at, "teacher", model.teacher, yaml::as_string);
  read(loc, at, "student", model.student, yaml::as_string);
}

void read_train(Locations& loc, const Located& at, TrainSection& t) {
  yaml::check_keys(at, {"optimizer", "lr", "beta1", "beta2", "eps", "weight_decay", "decay_norm_and_bias",
                        "lr_scheduler", "warmup_steps", "warmup_ratio", "min_lr", "max_steps", "epochs",
                        "micro_batch_size", "gradient_accumulation_steps", "accumulation", "max_grad_norm",
                        "precision", "gradient_checkpointing", "device", "log_interval", "eval_interval",
                        "eval_batches", "eval_at_start", "save_interval", "keep_last", "chunk_size"});
  read(loc, at, "optimizer", t.optimizer, yaml::as_string);
  read(loc, at, "lr", t.lr, yaml::as_double);
  read(loc, at, "beta1", t.beta1, yaml::as_double);
  read(loc, at, "beta2", t.beta2, yaml::as_double);
  read(loc, at, "eps", t.eps, yaml::as_double);
  read(loc, at, "weight_decay", t.weight_decay, yaml::as_double);
  read(loc, at, "decay_norm_and_bias", t.decay_norm_and_bias, yaml::as_bool);
  read(loc, at, "lr_scheduler", t.lr_scheduler, yaml::as_string);
  read(loc, at, "warmup_steps", t.warmup_steps, yaml::as_int);
  read(loc, at, "warmup_ratio", t.warmup_ratio, yaml::as_double);
  read(loc, at, "min_lr", t.min_lr, yaml::as_double);
  read(loc, at, "max_steps", t.max_steps, yaml::as_int);
  read(loc, at, "epochs", t.epochs, yaml::as_double);
  read(loc, at, "micro_batch_size", t.micro_batch_size, yaml::as_int);
  read(loc, at, "gradient_accumulation_steps", t.gradient_accumulation_steps, yaml::as_int);
  read(loc, at, "accumulation", t.accumulation, yaml::as_string);
  read(loc, at, "max_grad_norm", t.max_grad_norm, yaml::as_double);
  read(loc, at, "precision", t.precision, yaml::as_string);
  read(loc, at, "gradient_checkpointing", t.gradient_checkpointing, yaml::as_bool);
  read(loc, at, "device", t.device, yaml::as_string);
  read(loc, at, "log_interval", t.log_interval, yaml::as_int);
  read(loc, at, "eval_interval", t.eval_interval, yaml::as_int);
  read(loc, at, "eval_batches", t.eval_batches, yaml::as_int);
  read(loc, at, "eval_at_start", t.eval_at_start, yaml::as_bool);
  read(loc, at, "save_interval", t.save_interval, yaml::as_int);
  read(loc, at, "keep_last", t.keep_last, yaml::as_int);
  read(loc, at, "chunk_size", t.chunk_size, yaml::as_int);
}

void read_eval(Locations& loc, const Located& at, EvalSection& e) {
  yaml::check_keys(at, {"tasks", "interval", "limit", "batch_size", "num_fewshot"});
  read(loc, at, "tasks", e.tasks, yaml::as_string_list);
  read(loc, at, "interval", e.interval, yaml::as_int);
  read(loc, at, "limit", e.limit, yaml::as_int);
  read(loc, at, "batch_size", e.batch_size, yaml::as_int);
  read(loc, at, "num_fewshot", e.num_fewshot, yaml::as_int);
}

void read_distributed(Locations& loc, const Located& at, DistributedSection& d) {
  yaml::check_keys(at, {"backend", "nproc_per_node", "sharding"});
  read(loc, at, "backend", d.backend, yaml::as_string);
  read(loc, at, "nproc_per_node", d.nproc_per_node, yaml::as_int);
  read(loc, at, "sharding", d.sharding, yaml::as_string);
}

std::vector<data::DataSource> read_sources(Locations& loc, const Located& at, bool eval) {
  std::vector<data::DataSource> out;
  if (!at.node.IsSequence()) at.fail("expected a list of sources ({name, paths, weight}), got " + yaml::describe(at.node));
  for (size_t i = 0; i < at.node.size(); ++i) {
    const Located s = at.element(i);
    loc.note(s);
    if (eval) yaml::check_keys(s, {"name", "paths"});
    else yaml::check_keys(s, {"name", "paths", "weight"});
    data::DataSource src;
    read(loc, s, "name", src.name, yaml::as_string);
    read(loc, s, "paths", src.paths, as_path_list);
    if (!eval) read(loc, s, "weight", src.weight, yaml::as_double);
    if (src.paths.empty()) s.fail("a source needs 'paths' (shard files or globs)");
    out.push_back(std::move(src));
  }
  return out;
}

void read_data(Locations& loc, const Located& at, data::DataConfig& d, bool& seed_given) {
  yaml::check_keys(at, {"sources", "eval_sources", "seq_len", "packing", "pad_id", "seed", "shuffle"});
  const Located sources = at.child("sources");
  if (sources.node.IsDefined()) {
    loc.note(sources);
    d.sources = read_sources(loc, sources, false);
  }
  const Located eval = at.child("eval_sources");
  if (eval.node.IsDefined() && !eval.node.IsNull()) {
    loc.note(eval);
    d.eval_sources = read_sources(loc, eval, true);
  }
  read(loc, at, "seq_len", d.seq_len, yaml::as_int);
  read(loc, at, "packing", d.packing, yaml::as_string);
  read(loc, at, "pad_id", d.pad_id, yaml::as_int);
  seed_given = at.child("seed").node.IsDefined();
  read(loc, at, "seed", d.seed, as_seed);
  read(loc, at, "shuffle", d.shuffle, yaml::as_bool);
}

// One loss: ours (a `losses:` entry) or the reference's loss_<i> mapping. loss_function is applied
// first because a friendly name (eakld, lafd, ...) also sets loss_type / use_entropy / layers.
distill::DistillLossOptions read_loss(Locations& loc, const Located& at, const std::string& default_name,
                                      bool reference) {
  if (reference) {
    yaml::check_keys(at, {"loss_type", "loss_function", "alpha", "temperature", "use_entropy", "padding_id",
                          "confidence_k", "is_router_logits", "reduction", "normalize", "layer_index",
                          "layer_index_adaptive_metric", "layer_index_adaptive_topk",
                          "layer_index_adaptive_source", "self_relation_distill_component", "mask_alignment"});
  } else {
    yaml::check_keys(at, {"name", "loss_type", "loss_function", "alpha", "temperature", "use_entropy",
                          "padding_id", "confidence_k", "reduction", "layer_index", "layer_index_adaptive_metric",
                          "layer_index_adaptive_topk", "layer_index_adaptive_source",
                          "self_relation_distill_component", "mask_alignment"});
  }
  loc.note(at);
  distill::DistillLossOptions o;
  const auto named = [&](const char* key, auto parse) {  // enum keys: parse_* names the valid values
    const Located k = at.child(key);
    if (!k.node.IsDefined()) return;
    loc.note(k);
    try {
      parse(yaml::as_string(k));
    } catch (const std::invalid_argument& e) {
      k.fail(e.what());
    }
  };
  named("loss_function", [&](const std::string& s) { distill::apply_loss_name(o, s); });
  named("loss_type", [&](const std::string& s) { o.loss_type = distill::parse_loss_type(s); });
  read(loc, at, "alpha", o.alpha, yaml::as_double);
  read(loc, at, "temperature", o.temperature, yaml::as_double);
  read(loc, at, "use_entropy", o.use_entropy, yaml::as_bool);
  read(loc, at, "padding_id", o.padding_id, yaml::as_int);
  read(loc, at, "confidence_k", o.confidence_k, yaml::as_int);
  named("reduction", [&](const std::string& s) { o.reduction = distill::parse_reduction(s); });
  const Located layers = at.child("layer_index");
  if (layers.node.IsDefined()) {
    loc.note(layers);
    o.layer_index.clear();
    if (layers.node.IsSequence()) o.layer_index = yaml::as_string_list(layers);
    else if (!layers.node.IsNull()) o.layer_index = {yaml::as_string(layers)};
    for (const auto& entry : o.layer_index) {
      if (entry == "low" || entry == "mid" || entry == "high" || entry == "adaptive") continue;
      char* end = nullptr;
      errno = 0;
      (void)std::strtoll(entry.c_str(), &end, 10);
      if (entry.empty() || *end != '\0' || errno == ERANGE)
        layers.fail("'" + entry + "' is not a layer (an integer, negative from the end, or low, mid, high, adaptive)");
    }
  }
  named("layer_index_adaptive_metric", [&](const std::string& s) { o.layer_index_adaptive_metric = distill::parse_layer_metric(s); });
  read(loc, at, "layer_index_adaptive_topk", o.layer_index_adaptive_topk, yaml::as_int);
  named("layer_index_adaptive_source", [&](const std::string& s) { o.layer_index_adaptive_source = distill::parse_layer_source(s); });
  named("self_relation_distill_component", [&](const std::string& s) { o.self_relation_distill_component = distill::parse_relation_component(s); });
  named("mask_alignment", [&](const std::string& s) { o.mask_alignment = distill::parse_mask_alignment(s); });
  if (reference) {
    bool router = false, normalize = false;
    read(loc, at, "is_router_logits", router, yaml::as_bool);
    read(loc, at, "normalize", normalize, yaml::as_bool);  // declared by the reference, never read
    if (router) at.child("is_router_logits").fail("router-logit distillation (MoE) is not supported");
  }
  o.name = default_name.empty() ? distill::friendly_name(o) : default_name;
  read(loc, at, "name", o.name, yaml::as_string);
  if (o.name.empty()) at.fail("a loss name must not be empty");
  return o;
}

distill::DistillObjectiveOptions read_distillation(Locations& loc, const Located& at) {
  yaml::check_keys(at, {"loss_task_alpha", "padding_id", "losses"});
  distill::DistillObjectiveOptions o;
  read(loc, at, "loss_task_alpha", o.loss_task_alpha, yaml::as_double);
  read(loc, at, "padding_id", o.padding_id, yaml::as_int);
  const Located losses = at.child("losses");
  if (!losses.node.IsDefined() || losses.node.IsNull()) at.fail("needs 'losses' (a list, e.g. [{loss_function: eakld}])");
  loc.note(losses);
  if (!losses.node.IsSequence()) losses.fail("expected a list of losses, got " + yaml::describe(losses.node));
  for (size_t i = 0; i < losses.node.size(); ++i) o.losses.push_back(read_loss(loc, losses.element(i), "", false));
  return o;
}

// The reference's kd_configuration: method KD, loss_task_alpha, and one loss per mapping-valued
// key starting with "loss_", in file order (spec distillation.md §2.1).
distill::DistillObjectiveOptions read_kd_configuration(Locations& loc, const Located& at) {
  yaml::require_map(at);
  distill::DistillObjectiveOptions o;
  for (const auto& kv : at.node) {
    const std::string key = yaml::key_name(at, kv.first);
    const Located item = at.child(key);
    if (key == "method") {
      std::string m = yaml::as_string(item);
      std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::toupper(c); });
      if (m != "KD") item.fail("must be KD in kd_configuration, got '" + m + "'");
    } else if (key == "loss_task_alpha") {
      read(loc, at, "loss_task_alpha", o.loss_task_alpha, yaml::as_double);
    } else if (key == "router_aux_loss_coef" || key == "router_z_loss_coef") {
      (void)yaml::as_double(item);  // stored, never used by the reference trainers
    } else if (key == "log_level") {
      (void)yaml::as_string(item);
    } else if (key.rfind("loss_", 0) == 0 && item.node.IsMap()) {
      o.losses.push_back(read_loss(loc, item, key, true));
    } else {
      const auto mark = kv.first.Mark();
      throw ConfigError(at.file, mark.line + 1, mark.column + 1, item.path,
                        "unknown key (known: method, loss_task_alpha, loss_<name> mappings, router_aux_loss_coef, "
                        "router_z_loss_coef, log_level)");
    }
  }
  if (o.losses.empty()) at.fail("needs at least one loss_<name> mapping");
  return o;
}

QuantConfig read_quantization(Locations& loc, const Located& at) {
  loc.note(at);
  return detail::read_quant_section(at);
}


bool one_of(const std::string& v, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (v == n) return true;
  return false;
}

// Every value and cross-section rule; `loc` points each failure at its key.
void check(const TrainConfig& c, const Locations& loc, bool check_files) {
  const TrainSection& t = c.train;
  if (c.distillation && c.model.teacher.empty())
    loc.fail("model.teacher", "a distillation section needs a teacher model (HF folder)");
  if (c.model.teacher.empty() && c.model.student.empty())
    loc.fail("model", "give model.student (and model.teacher when distilling)");
  if (check_files) {
    for (const auto& [key, dir] : {std::pair<const char*, std::string>{"model.teacher", c.model.teacher},
                                   {"model.student", c.model.student}}) {
      if (dir.empty()) continue;
      if (!fs::exists(fs::path(dir) / "config.json"))
        loc.fail(key, "no Hugging Face model folder (config.json) at '" + dir + "' (relative paths resolve against " +
                          fs::current_path().string() + ")");
    }
  }
  if (c.run.output_dir.empty()) loc.fail("run.output_dir", "must not be empty");
  if (c.run.name.empty() || c.run.name.find('/') != std::string::npos || c.run.name == "." || c.run.name == "..")
    loc.fail("run.name", "must be a plain folder name, got '" + c.run.name + "'");
  if (t.optimizer != "adamw") loc.fail("train.optimizer", "unknown optimizer '" + t.optimizer + "' (known: adamw)");
  if (!(t.lr > 0) || !std::isfinite(t.lr)) loc.fail("train.lr", "must be > 0, got " + std::to_string(t.lr));
  if (!(t.beta1 >= 0 && t.beta1 < 1)) loc.fail("train.beta1", "must be in [0, 1), got " + std::to_string(t.beta1));
  if (!(t.beta2 >= 0 && t.beta2 < 1)) loc.fail("train.beta2", "must be in [0, 1), got " + std::to_string(t.beta2));
  if (!(t.eps > 0)) loc.fail("train.eps", "must be > 0");
  if (!(t.weight_decay >= 0)) loc.fail("train.weight_decay", "must be >= 0, got " + std::to_string(t.weight_decay));
  const auto& schedules = lr_scheduler_names();
  if (std::find(schedules.begin(), schedules.end(), t.lr_scheduler) == schedules.end()) {
    std::string known;
    for (const auto& s : schedules) known += (known.empty() ? "" : ", ") + s;
    loc.fail("train.lr_scheduler", "unknown schedule '" + t.lr_scheduler + "' (known: " + known + ")");
  }
  if (t.warmup_steps < 0) loc.fail("train.warmup_steps", "must be >= 0");
  if (!(t.warmup_ratio >= 0 && t.warmup_ratio < 1)) loc.fail("train.warmup_ratio", "must be in [0, 1)");
  if (t.warmup_steps > 0 && t.warmup_ratio > 0)
    loc.fail("train.warmup_ratio", "give warmup_steps or warmup_ratio, not both");
  if (t.lr_scheduler == "constant" && (t.warmup_steps > 0 || t.warmup_ratio > 0))
    loc.fail("train.lr_scheduler", "'constant' has no warmup; use constant_with_warmup");
  if (!(t.min_lr >= 0) || t.min_lr >= t.lr) loc.fail("train.min_lr", "must be in [0, lr)");
  if (t.min_lr > 0 && t.lr_scheduler != "cosine_with_min_lr")
    loc.fail("train.min_lr", "only cosine_with_min_lr uses min_lr (schedule is '" + t.lr_scheduler + "')");
  if (t.max_steps < 0) loc.fail("train.max_steps", "must be >= 0");
  if (!(t.epochs >= 0)) loc.fail("train.epochs", "must be >= 0");
  if ((t.max_steps > 0) == (t.epochs > 0))
    loc.fail(t.max_steps > 0 ? "train.epochs" : "train.max_steps",
             "give exactly one of train.max_steps and train.epochs (> 0)");
  if (t.micro_batch_size < 1) loc.fail("train.micro_batch_size", "must be >= 1");
  if (t.gradient_accumulation_steps < 1) loc.fail("train.gradient_accumulation_steps", "must be >= 1");
  if (!one_of(t.accumulation, {"mean", "sum"}))
    loc.fail("train.accumulation", "must be mean or sum, got '" + t.accumulation + "'");
  if (!(t.max_grad_norm >= 0)) loc.fail("train.max_grad_norm", "must be >= 0 (0 disables clipping)");
  if (!one_of(t.precision, {"auto", "bf16", "fp32"}))
    loc.fail("train.precision", "must be auto, bf16 or fp32, got '" + t.precision + "'");
  if (!is_device_spec(t.device))
    loc.fail("train.device", "must be cpu, cuda, cuda:N or auto, got '" + t.device + "'");
  if (t.log_interval < 1) loc.fail("train.log_interval", "must be >= 1");
  if (t.eval_interval < 0) loc.fail("train.eval_interval", "must be >= 0");
  if (t.eval_batches < 1) loc.fail("train.eval_batches", "must be >= 1");
  if (t.save_interval < 0) loc.fail("train.save_interval", "must be >= 0");
  if (t.keep_last < 1) loc.fail("train.keep_last", "must be >= 1");
  if (t.chunk_size < 0) loc.fail("train.chunk_size", "must be >= 0 (0 = unchunked logits)");
  if (t.eval_interval > 0 && c.data.eval_sources.empty())
    loc.fail("train.eval_interval", "evaluation needs data.eval_sources");
  if (c.eval.interval < 0) loc.fail("eval.interval", "must be >= 0");
  if (c.eval.limit < 0) loc.fail("eval.limit", "must be >= 0 (0 = every document)");
  if (c.eval.batch_size < 1) loc.fail("eval.batch_size", "must be >= 1");
  if (c.eval.interval > 0 && c.eval.tasks.empty()) loc.fail("eval.interval", "runs eval.tasks: list some task files");
  if (check_files)
    for (size_t i = 0; i < c.eval.tasks.size(); ++i) {
      try {
        eval::load_task_config(c.eval.tasks[i]);  // a broken task file fails now, not mid-run
      } catch (const std::exception& e) {
        loc.fail("eval.tasks[" + std::to_string(i) + "]", e.what());
      }
    }
  if (!one_of(c.distributed.backend, {"auto", "gloo", "nccl"}))
    loc.fail("distributed.backend", "must be auto, gloo or nccl, got '" + c.distributed.backend + "'");
  if (c.distributed.nproc_per_node < 1) loc.fail("distributed.nproc_per_node", "must be >= 1");
  if (!one_of(c.distributed.sharding, {"none", "optimizer", "gradients", "parameters"}))
    loc.fail("distributed.sharding", "must be none, optimizer, gradients or parameters (ZeRO stage 0-3), got '" +
                                         c.distributed.sharding + "'");
  if (c.data.sources.empty()) loc.fail("data.sources", "at least one training source is required");
  if (c.data.seq_len < 2) loc.fail("data.seq_len", "must be >= 2 (the loss predicts token t+1 from t)");

  if (c.distillation) {
    const auto& d = *c.distillation;
    if (!(d.loss_task_alpha >= 0)) loc.fail("distillation.loss_task_alpha", "must be >= 0");
    std::set<std::string> names;
    for (size_t i = 0; i < d.losses.size(); ++i) {
      const auto& l = d.losses[i];
      const std::string key = loc.has("kd_configuration") ? "kd_configuration." + l.name
                                                          : "distillation.losses[" + std::to_string(i) + "]";
      const std::string problem = distill::validate(l);
      if (!problem.empty()) {
        const size_t colon = problem.find(": ");
        loc.fail(key + "." + problem.substr(0, colon), problem.substr(colon + 2));
      }
      if (!(l.alpha >= 0)) loc.fail(key + ".alpha", "must be >= 0");
      if (l.loss_type == distill::LossType::attentions || l.loss_type == distill::LossType::past_key_values)
        loc.fail(key + ".loss_type", std::string("'") + distill::to_string(l.loss_type) +
                                         "' losses need attention maps / KV caches, which the trainer does not collect "
                                         "(use logits or hidden_states)");
      if (!names.insert(l.name).second)
        loc.fail(key + ".name", "duplicate loss name '" + l.name + "' (give each loss its own name)");
      if (l.name == "task_ce" || l.name == "distill" || l.name == "total")
        loc.fail(key + ".name", "'" + l.name + "' is reserved for the objective's own log entries");
    }
    if (d.losses.empty() && d.loss_task_alpha == 0) loc.fail("distillation", "no loss: loss_task_alpha is 0 and no losses");
  }
  // The data section's own checks (values, every path/glob matches a file).
  if (check_files) {
    data::validate(c.data, "data", [&](const std::string& key) { return loc.locate(key); });
  } else {  // the value checks of data::validate, without looking for the files
    if (!one_of(c.data.packing, {"pack", "pad"}))
      loc.fail("data.packing", "must be pack or pad, got '" + c.data.packing + "'");
    for (size_t i = 0; i < c.data.sources.size(); ++i)
      if (!(c.data.sources[i].weight > 0) || !std::isfinite(c.data.sources[i].weight))
        loc.fail("data.sources[" + std::to_string(i) + "].weight", "must be > 0");
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// --set: walk "a.b[2].c" through the tree, creating mappings as needed, and replace the leaf by
// the value parsed as YAML (so "1e-5", "true", "[a, b]" and "{x: 1}" all work).

namespace {
std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::string cur;
  for (size_t i = 0; i < key.size(); ++i) {
    const char c = key[i];
    if (c == '.') {
      if (cur.empty()) throw ConfigError("", 0, 0, "--set " + key, "empty key segment");
      parts.push_back(cur);
      cur.clear();
    } else if (c == '[') {
      if (!cur.empty()) parts.push_back(cur);
      const size_t close = key.find(']', i);
      if (close == std::string::npos) throw ConfigError("", 0, 0, "--set " + key, "missing ']'");
      cur = key.substr(i, close - i + 1);
      parts.push_back(cur);
      cur.clear();
      i = close;
      if (i + 1 < key.size() && key[i + 1] == '.') ++i;
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(cur);
  if (parts.empty()) throw ConfigError("", 0, 0, "--set", "empty key");
  return parts;
}

}  // namespace

void yaml::apply_override(YAML::Node& root, const Override& o) {
  const std::string where = "--set " + o.key + "=" + o.value;
  YAML::Node value;
  try {
    value = YAML::Load(o.value);
  } catch (const YAML::Exception& e) {
    throw ConfigError("", 0, 0, where, "value is not valid YAML: " + std::string(e.what()));
  }
  const auto parts = split_key(o.key);
  // yaml-cpp nodes are handles: walking with copies and assigning through them edits the tree.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i < parts.size(); ++i) {
    YAML::Node& cur = chain.back();
    const std::string& p = parts[i];
    const bool last = i + 1 == parts.size();
    if (p.front() == '[') {
      size_t index = 0;
      try {
        index = std::stoul(p.substr(1, p.size() - 2));
      } catch (const std::exception&) {
        throw ConfigError("", 0, 0, where, "'" + p + "' is not a list index");
      }
      if (!cur.IsSequence() || index >= cur.size())
        throw ConfigError("", 0, 0, where, "'" + p + "' indexes past the end of the list (or not a list)");
      if (last) {
        cur[index] = value;
        return;
      }
      chain.push_back(cur[index]);
    } else {
      if (cur.IsNull() || !cur.IsDefined()) cur = YAML::Node(YAML::NodeType::Map);
      if (!cur.IsMap()) throw ConfigError("", 0, 0, where, "cannot set '" + p + "' inside a non-mapping value");
      if (last) {
        cur[p] = value;
        return;
      }
      if (!cur[p]) cur[p] = YAML::Node(YAML::NodeType::Map);
      chain.push_back(cur[p]);
    }
  }
}

bool is_device_spec(const std::string& spec) {
  if (spec == "cpu" || spec == "cuda" || spec == "auto") return true;
  return spec.rfind("cuda:", 0) == 0 && spec.size() > 5 && spec.size() <= 9 &&
         std::all_of(spec.begin() + 5, spec.end(), [](unsigned char ch) { return std::isdigit(ch); });
}

Override parse_override(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("", 0, 0, "--set " + assignment, "expected KEY=VALUE, e.g. --set train.lr=1e-5");
  return {assignment.substr(0, eq), assignment.substr(eq + 1)};
}

namespace {
TrainConfig parse_tree(const std::string& yaml_text, const std::string& origin, const std::vector<Override>& overrides,
                       bool check_files) {
  YAML::Node root = yaml::parse_text(yaml_text, origin);
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const auto& o : overrides) yaml::apply_override(root, o);
  const Located top{root, origin, ""};
  if (!root.IsMap()) top.fail("expected a mapping at the top of the file");
  yaml::check_keys(top, {"run", "model", "quantization", "qat_configuration", "distillation", "kd_configuration",
                         "data", "train", "eval", "distributed", "log_level"});
  Locations loc(origin);
  TrainConfig c;
  c.source = origin;
  c.run.name = origin.empty() ? "run" : fs::path(origin).stem().string();
  const auto section = [&](const char* key) {
    Located at = top.child(key);
    if (at.node.IsDefined()) loc.note(at);
    return at;
  };
  const auto present = [](const Located& at) { return at.node.IsDefined() && !at.node.IsNull(); };
  if (const auto at = section("run"); present(at)) read_run(loc, at, c.run);
  if (const auto at = section("model"); present(at)) read_model(loc, at, c.model);
  if (c.model.student.empty()) c.model.student = c.model.teacher;

  const auto quant = section("quantization"), qat = section("qat_configuration");
  if (present(quant) && present(qat)) qat.fail("give either quantization or qat_configuration, not both");
  if (present(quant)) c.quantization = read_quantization(loc, quant);
  if (present(qat)) c.quantization = read_quantization(loc, qat);

  const auto dist = section("distillation"), kd = section("kd_configuration");
  if (present(dist) && present(kd)) kd.fail("give either distillation or kd_configuration, not both");
  if (present(dist)) c.distillation = read_distillation(loc, dist);
  if (present(kd)) c.distillation = read_kd_configuration(loc, kd);

  bool data_seed_given = false;
  const auto data_at = section("data");
  if (!present(data_at)) top.fail("needs a 'data' section with at least one source");
  read_data(loc, data_at, c.data, data_seed_given);
  if (!data_seed_given) c.data.seed = c.run.seed;
  if (const auto at = section("train"); present(at)) read_train(loc, at, c.train);
  if (const auto at = section("eval"); present(at)) read_eval(loc, at, c.eval);
  if (const auto at = section("distributed"); present(at)) read_distributed(loc, at, c.distributed);
  if (c.distillation) c.distillation->chunk_size = c.train.chunk_size;
  check(c, loc, check_files);
  return c;
}
}  // namespace

TrainConfig parse_train_config(const std::string& yaml_text, const std::string& origin,
                               const std::vector<Override>& overrides, bool check_files) {
  try {
    return parse_tree(yaml_text, origin, overrides, check_files);
  } catch (const ConfigError& e) {
    // An error about an overridden key points at the flag, not at a line of the file.
    // A key set whole keeps the short form ("--set train.lr=abc: expected a number"); a key inside
    // a set mapping names both ("--set train={lr: abc}: train.lr: expected a number").
    const std::string message = e.what();
    for (auto o = overrides.rbegin(); o != overrides.rend(); ++o) {
      const size_t at = message.find(o->key + ": ");
      if (at != std::string::npos && (at == 0 || message[at - 1] == ' '))
        throw ConfigError("", 0, 0, "--set " + o->key + "=" + o->value, message.substr(at + o->key.size() + 2));
      for (const char* next : {".", "["}) {
        const size_t inner = message.find(o->key + next);
        if (inner != std::string::npos && (inner == 0 || message[inner - 1] == ' '))
          throw ConfigError("--set " + o->key + "=" + o->value + ": " + message.substr(inner));
      }
    }
    throw;
  }
}

TrainConfig load_train_config(const std::string& path, const std::vector<Override>& overrides, bool check_files) {
  return parse_train_config(yaml::read_file_text(path), path, overrides, check_files);
}

void validate(const TrainConfig& config) { check(config, Locations(config.source), true); }

}  // namespace edgerazor::config
