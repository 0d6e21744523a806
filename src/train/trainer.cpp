// Implements: the Trainer recipe (setup / train / cleanup) over the step pieces in step.h.
// Legend: B micro-batch, T seq_len, GA gradient accumulation steps.
#include "edgerazor/train/trainer.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <optional>

#include "edgerazor/core/error.h"
#include "edgerazor/distill/objective.h"
#include "edgerazor/distributed/trainer_sync.h"
#include "edgerazor/distributed/zero.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/quant/inject.h"
#include "edgerazor/runtime/caching_allocator.h"
#include "edgerazor/runtime/device.h"
#include "edgerazor/runtime/gpu_memory.h"
#include "edgerazor/runtime/process_memory.h"
#include "edgerazor/runtime/runtime.h"
#include "edgerazor/train/checkpoint.h"
#include "edgerazor/train/memory_model.h"
#include "edgerazor/train/metrics.h"
#include "edgerazor/train/preflight.h"
#include "edgerazor/train/run_lock.h"
#include "edgerazor/train/fused_adamw.h"
#include "edgerazor/train/step.h"
#include "edgerazor/train/task_eval.h"

namespace edgerazor::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

volatile std::sig_atomic_t g_stop_requested = 0;
extern "C" void on_stop_signal(int) { g_stop_requested = 1; }

// SIGINT/SIGTERM -> request_stop() for the duration of train(); the previous handlers come back.
class SignalGuard {
 public:
  explicit SignalGuard(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    if (!enabled_) return;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  bool enabled_;
  struct sigaction old_int_ {}, old_term_ {};
};

// Running sums of the loss parts over one logging window (micro-batch values, averaged over the
// micro-batches that had the part: an adaptive layer's loss exists only when it was chosen).
struct PartSums {
  std::vector<std::string> order;
  std::map<std::string, double> sum;
  std::map<std::string, int64_t> seen;
  double total = 0;
  int64_t count = 0;
  void add(const distill::LossOutput& out) {
    total += out.total.item<double>();
    for (const auto& [name, value] : out.parts) {
      if (!sum.count(name)) order.push_back(name);
      sum[name] += value.item<double>();
      ++seen[name];
    }
    ++count;
  }
  // "lafd.layer_5" (its loss) is followed by "lafd.layer_5.selected": the share of micro-batches
  // of the window that chose it.
  Scalars means() const {
    Scalars out;
    for (const auto& name : order) {
      out.emplace_back(name, sum.at(name) / static_cast<double>(std::max<int64_t>(seen.at(name), 1)));
      if (name.find(".layer_") != std::string::npos)
        out.emplace_back(name + ".selected", static_cast<double>(seen.at(name)) / static_cast<double>(std::max<int64_t>(count, 1)));
    }
    return out;
  }
  double mean_total() const { return total / static_cast<double>(std::max<int64_t>(count, 1)); }
  void clear() { *this = PartSums(); }
};

std::string describe_parts(const distill::LossOutput& out) {
  std::string s;
  for (const auto& [name, value] : out.parts) s += (s.empty() ? "" : ", ") + name + "=" + std::to_string(value.item<double>());
  return s;
}

}  // namespace

void request_stop() { g_stop_requested = 1; }

struct Trainer::State {
  config::TrainConfig cfg;
  TrainerOptions options;
  std::shared_ptr<GradientSync> sync;
  std::string run_dir;
  at::Device device = at::kCPU;
  Precision precision = Precision::fp32;

  model::CausalLM student{nullptr}, teacher{nullptr};
  distill::DistillObjective objective{nullptr};
  StepModels models;
  std::unique_ptr<data::DataLoader> loader, eval_loader;
  std::unique_ptr<torch::optim::AdamW> optimizer;  // null when sharded (zero)
  std::unique_ptr<distributed::ProcessGroup> single_group;  // sharding on one process: no peers
  std::unique_ptr<distributed::ZeroOptimizer> zero;          // distributed.sharding != none
  MemoryPrediction memory;                                   // printed at start-up, logged with the peak
  std::vector<at::Tensor> params;  // unique, for gradient synchronisation
  MetricsLog metrics;
  RunFolderLock run_lock;  // held by the I/O rank for the trainer's life
  std::string quant_yaml, config_yaml;
  double quantized = -1, quantized_outer = -1, quantized_largest_layer = -1;  // elements, for the memory model
  std::unique_ptr<TrainingTaskEval> tasks;  // the `eval` section's task files (I/O rank)

  int64_t step = 0, start_step = 0, total_steps = 0, warmup = 0;
  double loss_scale = 1.0, last_lr = 0, min_lr_ratio = 0;
  int64_t tokens_seen = 0;
  double elapsed_before = 0;  // training seconds of earlier sessions
  std::string last_checkpoint;
  bool setup_done = false;

  bool io() const { return sync->is_io_rank(); }
  std::ostream& out() const { return options.progress ? *options.progress : std::cout; }
  void say(const std::string& line) const {
    if (io() && !options.quiet) out() << line << std::endl;
  }
};

Trainer::Trainer(config::TrainConfig config, TrainerOptions options) : s_(std::make_unique<State>()) {
  s_->cfg = std::move(config);
  s_->options = std::move(options);
  s_->sync = s_->options.gradient_sync ? s_->options.gradient_sync : std::make_shared<GradientSync>();
  s_->run_dir = (fs::path(s_->cfg.run.output_dir) / s_->cfg.run.name).string();
  // Steps repeat the same large temporaries: reuse them instead of page-faulting them in anew.
  runtime::use_caching_cpu_allocator();
}

Trainer::~Trainer() = default;
const config::TrainConfig& Trainer::config() const { return s_->cfg; }
std::string Trainer::run_dir() const { return s_->run_dir; }

void Trainer::setup() {
  State& s = *s_;
  const auto& cfg = s.cfg;
  const auto& t = cfg.train;
  config::validate(cfg);
  check_config_against_models(cfg);

  // ---- device and precision ----
  try {
    // A rank of a data-parallel job gets its cuda:LOCAL_RANK from the process group (the tool
    // writes it into train.device); a single process takes GPU 0.
    s.device = runtime::resolve_device(t.device, 0, "train.device");
  } catch (const ConfigError& e) {
    throw ConfigError(cfg.source.empty() ? e.what() : cfg.source + ": " + e.what());
  }
  s.precision = resolve_precision(t.precision, s.device.str());
  at::manual_seed(cfg.run.seed);
  const double baseline_mib = runtime::resident_mib();
  const auto stage = distributed::parse_sharding(cfg.distributed.sharding);

  // ---- models ----
  io::LoadOptions student_load;
  student_load.device = s.device;
  s.student = io::load_pretrained(cfg.model.student, student_load);
  if (cfg.quantization) {
    const auto report = quant::inject(*s.student, *cfg.quantization);
    {  // what the step's quantized-weights scope copies: an untied embedding is looked up row by row
      std::map<int64_t, double> per_layer;
      s.quantized = s.quantized_outer = s.quantized_largest_layer = 0;
      for (const auto& row : report.rows) {
        if (row.name.find("embed_tokens") != std::string::npos && !s.student->config.tie_word_embeddings) continue;
        const double n = static_cast<double>(row.numel);
        s.quantized += n;
        if (const int64_t layer = model::decoder_layer_of(row.name); layer >= 0) {
          s.quantized_largest_layer = std::max(s.quantized_largest_layer, per_layer[layer] += n);
        } else {
          s.quantized_outer += n;
        }
      }
    }
    // Written expanded and without the preset key, so reading it back gives this exact config
    // (with the key, a reader would apply the preset's overrides a second time).
    config::QuantConfig expanded = *cfg.quantization;
    expanded.preset.clear();
    s.quant_yaml = (cfg.quantization->preset.empty() ? "" : "# expanded from preset " + cfg.quantization->preset + "\n") +
                   config::to_yaml(expanded) + "\n";
    char buf[160];
    std::snprintf(buf, sizeof(buf), "quantized %zu weights: coverage %.2f%%, %.3f bits/weight (codes), KV8 on %zu modules",
                  report.rows.size(), 100.0 * report.coverage(), report.average_code_bits(), report.kv_modules.size());
    s.say(buf);
  }
  s.student->set_gradient_checkpointing(t.gradient_checkpointing);
  s.student->train();
  if (cfg.distillation) {
    io::LoadOptions teacher_load;
    teacher_load.device = s.device;
    teacher_load.dtype = s.precision == Precision::bf16 ? at::kBFloat16 : at::kFloat;
    s.teacher = io::load_pretrained(cfg.model.teacher, teacher_load);
    s.teacher->eval();
    for (auto& p : s.teacher->parameters()) p.set_requires_grad(false);
    if (s.teacher->config.vocab_size != s.student->config.vocab_size)
      throw ConfigError(cfg.source, 0, 0, "model.teacher", "teacher vocabulary (" + std::to_string(s.teacher->config.vocab_size) +
                                                               ") differs from the student's (" +
                                                               std::to_string(s.student->config.vocab_size) + ")");
  }
  distill::DistillObjectiveOptions objective;  // no distillation: plain CE
  if (cfg.distillation) objective = *cfg.distillation;
  objective.chunk_size = t.chunk_size;
  s.objective = distill::DistillObjective(objective);
  s.models.student = s.student.get();
  s.models.teacher = s.teacher ? s.teacher.get() : nullptr;
  s.models.objective = s.objective.get();
  for (const auto& l : objective.losses)
    if (l.loss_type == distill::LossType::hidden_states) s.models.hidden_states = true;

  // ---- data ----
  const int rank = s.sync->rank(), world = s.sync->world_size();
  s.loader = std::make_unique<data::DataLoader>(cfg.data, t.micro_batch_size, rank, world);
  if (!cfg.data.eval_sources.empty())
    s.eval_loader = std::make_unique<data::DataLoader>(cfg.data, t.micro_batch_size, rank, world, /*eval=*/true);
  if (s.loader->max_token_id() >= s.student->config.vocab_size)
    throw ConfigError(cfg.source, 0, 0, "data.sources",
                      "token id " + std::to_string(s.loader->max_token_id()) + " is outside the model's vocabulary of " +
                          std::to_string(s.student->config.vocab_size) + " (shards made with another tokenizer?)");

  // ---- optimizer and schedule (a sharded optimizer is built after the weights are final) ----
  if (stage == distributed::ShardingStage::none) s.optimizer = make_adamw(*s.student, t);
  for (const auto& [name, p] : s.student->unique_named_parameters()) s.params.push_back(p);
  if (t.max_steps > 0) {
    s.total_steps = t.max_steps;
  } else {  // HF: steps/epoch = floor(floor(rows / (B * W)) / GA), drop_last
    const int64_t per_epoch = s.loader->rows_per_epoch() / (t.micro_batch_size * world) / t.gradient_accumulation_steps;
    if (per_epoch < 1)
      throw ConfigError(cfg.source, 0, 0, "train.epochs",
                        "one epoch (" + std::to_string(s.loader->rows_per_epoch()) +
                            " rows) is less than one optimizer step; use train.max_steps");
    s.total_steps = static_cast<int64_t>(std::ceil(t.epochs * static_cast<double>(per_epoch)));
  }
  s.warmup = config::warmup_steps(t, s.total_steps);
  s.loss_scale = t.accumulation == "sum" ? 1.0 : 1.0 / static_cast<double>(t.gradient_accumulation_steps);
  s.min_lr_ratio = t.lr_scheduler == "cosine_with_min_lr" ? t.min_lr / t.lr : 0.0;
  s.config_yaml = config::to_yaml(cfg);

  // ---- run folder, resume ----
  if (s.io()) s.run_lock = lock_run_folder(s.run_dir);
  const auto checkpoints = list_checkpoints(s.run_dir);
  if (!checkpoints.empty() && !s.options.resume)
    throw ConfigError(cfg.source, 0, 0, "run.name",
                      "run folder " + s.run_dir + " already has a checkpoint (" + checkpoints.back().path +
                          "); pass --resume to continue it, or choose another run.name / run.output_dir");
  // The newest checkpoint that verifies and loads; damaged newer ones are named and skipped.
  std::optional<CheckpointInfo> latest;
  TrainerState st;
  std::string skipped;
  for (auto it = checkpoints.rbegin(); it != checkpoints.rend() && !latest; ++it) {
    try {
      st = load_checkpoint(it->path, *s.student, s.optimizer.get());
      s.loader->restore(st.data_state);
      latest = *it;
    } catch (const std::exception& e) {
      std::string why = e.what();
      if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) why = c10_error->what_without_backtrace();
      s.say("warning: skipping checkpoint " + it->path + ": " + why);
      skipped += "\n  " + it->path + ": " + why;
    }
  }
  if (!checkpoints.empty() && !latest)
    throw FormatError(s.run_dir, "no checkpoint of this run can be resumed:" + skipped);
  if (latest && st.step > s.total_steps)
    throw ConfigError(cfg.source, 0, 0, "train.max_steps",
                      "the checkpoint " + latest->path + " is at step " + std::to_string(st.step) +
                          ", past this config's " + std::to_string(s.total_steps) + " steps");
  if (latest) {
    s.step = s.start_step = st.step;
    s.tokens_seen = st.tokens_seen;
    s.elapsed_before = st.elapsed_seconds;
    s.last_lr = st.lr;
    s.last_checkpoint = latest->path;
    if (st.total_steps != s.total_steps)
      s.say("note: the checkpoint's run had " + std::to_string(st.total_steps) + " steps, this config has " +
            std::to_string(s.total_steps) + "; the config wins");
    std::ifstream saved(fs::path(latest->path) / "train_config.yaml");
    std::string saved_yaml((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
    if (!saved_yaml.empty() && saved_yaml != s.config_yaml)
      s.say("note: the config differs from the checkpoint's train_config.yaml; the current config wins");
    const int64_t rows_now = world * t.micro_batch_size * t.gradient_accumulation_steps;
    const int64_t rows_then = st.rows_per_step > 0 ? st.rows_per_step : st.world_size * t.micro_batch_size * t.gradient_accumulation_steps;
    if (st.world_size != world)
      s.say("note: the checkpoint was written by " + std::to_string(st.world_size) + " rank(s), this run has " +
            std::to_string(world) + ": the data stream continues at the same global position" +
            (rows_now == rows_then ? std::string(", with the same ") + std::to_string(rows_now) + " rows per optimizer step"
                                   : ", but each optimizer step now sees " + std::to_string(rows_now) + " rows instead of " +
                                         std::to_string(rows_then) + ", so the result will differ from an uninterrupted run"));
    s.say("resumed from " + latest->path + " at step " + std::to_string(s.step));
  } else if (s.options.resume) {
    s.say("no complete checkpoint in " + s.run_dir + ": starting from step 0");
  }
  // The moments now, after a checkpoint's (FusedAdamW::allocate_state says why).
  if (auto* adamw = dynamic_cast<FusedAdamW*>(s.optimizer.get())) adamw->allocate_state();
  if (stage != distributed::ShardingStage::none) {
    distributed::ProcessGroup* group = nullptr;
    if (auto* c10d = dynamic_cast<distributed::C10dGradientSync*>(s.sync.get())) group = &c10d->group();
    if (!group) {
      s.single_group = std::make_unique<distributed::ProcessGroup>(
          distributed::DistEnv{}, distributed::ProcessGroupOptions().device(s.device.is_cuda() ? s.device.str() : "cpu"));
      group = s.single_group.get();
    }
    s.zero = std::make_unique<distributed::ZeroOptimizer>(*group, *s.student, t, stage);
    if (latest) s.zero->load(latest->path);
    runtime::release_cached_cpu_memory();  // the full weights a shard replaced go back to the system
    const auto& z = s.zero->stats();
    char buf[200];
    std::snprintf(buf, sizeof(buf), "sharding %s over %d rank(s): %lld units, %lld of %lld parameters per rank%s",
                  distributed::sharding_name(stage), world, static_cast<long long>(z.units),
                  static_cast<long long>(z.shard_elements), static_cast<long long>(z.parameters),
                  stage == distributed::ShardingStage::parameters ? " (layers gathered on use; gradient checkpointing on)" : "");
    s.say(buf);
  }
  {
    MemoryModelInput mi;
    mi.student = s.student->config;
    mi.teacher = s.teacher ? &s.teacher->config : nullptr;
    mi.stage = static_cast<int>(stage);
    mi.world_size = world;
    mi.micro_batch = t.micro_batch_size;
    mi.seq_len = cfg.data.seq_len;
    mi.bf16 = s.precision == Precision::bf16;
    mi.gradient_checkpointing = s.student->model->gradient_checkpointing;
    mi.hidden_state_losses = s.models.hidden_states;
    mi.baseline_bytes = baseline_mib * 1024.0 * 1024.0;
    mi.quantized = s.quantized;
    mi.quantized_outer = s.quantized_outer;
    mi.quantized_largest_layer = s.quantized_largest_layer;
    s.memory = predict_training_memory(mi);
    s.say(s.memory.describe(distributed::sharding_name(stage)));
  }
  if (s.io()) {
    fs::create_directories(s.run_dir);
    std::ofstream(fs::path(s.run_dir) / "config.yaml") << s.config_yaml;
    s.metrics = MetricsLog((fs::path(s.run_dir) / "metrics.jsonl").string(), latest ? s.step : -1);
  }
  s.setup_done = true;
}

TrainSummary Trainer::train() {
  if (!s_->setup_done) setup();
  State& s = *s_;
  const auto& t = s.cfg.train;
  SignalGuard signals(s.options.handle_signals);
  g_stop_requested = 0;
  TrainSummary summary;
  summary.run_dir = s.run_dir;
  summary.start_step = s.start_step;
  summary.total_steps = s.total_steps;
  summary.initial_eval_loss = summary.final_eval_loss = summary.teacher_eval_loss = kNaN;

  // Evaluation, tasks and checkpoints run outside the steps: their memory is not the training
  // peak the memory model predicts (the peak is read before and reset after), and with sharded
  // parameters they see the whole student, gathered on every rank and given back afterwards.
  double steps_peak_mib = 0;
  struct Materialized {
    distributed::ZeroOptimizer* zero;
    double& peak;
    Materialized(distributed::ZeroOptimizer* z, double& steps_peak) : zero(z), peak(steps_peak) {
      peak = std::max(peak, runtime::peak_resident_mib());
      if (zero) zero->materialize();
    }
    ~Materialized() {
      if (zero && zero->stage() == distributed::ShardingStage::parameters) {
        zero->release_all();
        runtime::release_cached_cpu_memory();
      }
      runtime::reset_peak_resident();
    }
  };
  const auto evaluate_now = [&](bool with_teacher) {
    if (!s.eval_loader) return kNaN;
    Materialized whole(s.zero.get(), steps_peak_mib);
    EvalResult r = evaluate(*s.student, *s.eval_loader, t.eval_batches, s.device, s.precision, t.chunk_size);
    std::vector<double> sums{r.tokens ? r.loss * static_cast<double>(r.tokens) : 0.0, static_cast<double>(r.tokens)};
    s.sync->average(sums);  // token-weighted over ranks
    r.loss = sums[1] > 0 ? sums[0] / sums[1] : kNaN;
    r.perplexity = std::exp(r.loss);
    r.tokens = static_cast<int64_t>(std::llround(sums[1] * s.sync->world_size()));
    Scalars values{{"eval_loss", r.loss}, {"eval_ppl", r.perplexity}, {"eval_tokens", static_cast<double>(r.tokens)}};
    if (with_teacher && s.teacher) {
      const EvalResult tr = evaluate(*s.teacher, *s.eval_loader, t.eval_batches, s.device, s.precision, t.chunk_size);
      std::vector<double> tsums{tr.tokens ? tr.loss * static_cast<double>(tr.tokens) : 0.0, static_cast<double>(tr.tokens)};
      s.sync->average(tsums);
      summary.teacher_eval_loss = tsums[1] > 0 ? tsums[0] / tsums[1] : kNaN;
      values.emplace_back("teacher_eval_loss", summary.teacher_eval_loss);
    }
    s.metrics.write("eval", s.step, values);
    char buf[160];
    std::snprintf(buf, sizeof(buf), "eval step %lld: loss %.4f, ppl %.3f (%lld tokens)", static_cast<long long>(s.step),
                  r.loss, r.perplexity, static_cast<long long>(r.tokens));
    s.say(std::string(buf) + (with_teacher && s.teacher ? ", teacher loss " + std::to_string(summary.teacher_eval_loss) : ""));
    return r.loss;
  };
  // Downstream tasks on the I/O rank (the other ranks wait at the next collective).
  const auto run_tasks = [&] {
    if (s.cfg.eval.tasks.empty()) return;
    Materialized whole(s.zero.get(), steps_peak_mib);  // every rank: the gather is collective
    if (!s.tasks) return;
    const Scalars values = s.tasks->run(*s.student);
    s.metrics.write("tasks", s.step, values);
    s.say("tasks step " + std::to_string(s.step) + ": " + TrainingTaskEval::summary(values));
  };
  const auto checkpoint_now = [&] {
    Materialized whole(s.zero.get(), steps_peak_mib);
    s.sync->barrier();
    TrainerState st;
    st.step = s.step;
    st.total_steps = s.total_steps;
    st.warmup_steps = s.warmup;
    st.lr = s.last_lr;
    st.tokens_seen = s.tokens_seen;
    st.data_state = s.loader->state_json();
    st.seed = s.cfg.run.seed;
    st.world_size = s.sync->world_size();
    st.rows_per_step = s.sync->world_size() * t.micro_batch_size * t.gradient_accumulation_steps;
    st.elapsed_seconds = s.elapsed_before;
    const CheckpointContents contents{s.cfg.model.student, s.quant_yaml, s.config_yaml};
    if (!s.zero) {
      if (s.io()) s.last_checkpoint = save_checkpoint(s.run_dir, *s.student, *s.optimizer, st, contents, t.keep_last);
    } else {  // rank 0 writes the model, every rank its optimizer shard, rank 0 commits
      if (s.io()) stage_checkpoint(s.run_dir, *s.student, nullptr, st, contents);
      s.sync->barrier();
      s.zero->save(checkpoint_staging_dir(s.run_dir, st.step));
      s.sync->barrier();
      if (s.io()) {
        s.zero->check_saved(checkpoint_staging_dir(s.run_dir, st.step));
        s.last_checkpoint = commit_checkpoint(s.run_dir, st.step, t.keep_last);
      }
    }
    if (s.io()) s.say("saved " + s.last_checkpoint);
    s.sync->barrier();
  };

  if (s.io() && !s.cfg.eval.tasks.empty()) s.tasks = std::make_unique<TrainingTaskEval>(s.cfg.eval, s.cfg.model.student);
  if (s.step == 0 && t.eval_at_start) {
    summary.initial_eval_loss = evaluate_now(true);  // the PTQ baseline
    run_tasks();
  }
  runtime::reset_peak_resident();  // the peak of training, without setup's
  const auto session_start = Clock::now();
  auto window_start = session_start;
  int64_t window_tokens = 0;
  PartSums window;

  while (s.step < s.total_steps) {
    runtime::adapt_threads();  // the default thread count follows other load (runtime.h)
    s.last_lr = t.lr * config::lr_lambda(t.lr_scheduler, s.step, s.warmup, s.total_steps, s.min_lr_ratio);
    if (s.optimizer) set_learning_rate(*s.optimizer, s.last_lr);
    if (s.zero) s.zero->begin_step();
    for (int64_t m = 0; m < t.gradient_accumulation_steps; ++m) {
      const StepBatch batch = to_tensors(s.loader->next(), s.device);
      const distill::LossOutput out = forward_backward(s.models, batch, s.loss_scale, s.precision);
      // Every rank stops together (the others would wait in the next collective otherwise).
      const bool finite = std::isfinite(out.total.item<double>());
      std::vector<double> bad{finite ? 0.0 : 1.0};
      if (s.sync->world_size() > 1) s.sync->average(bad);
      if (!finite || bad[0] > 0)
        throw TrainingError("step " + std::to_string(s.step + 1) + ": the loss is " +
                            (finite ? "not finite on another rank" : std::to_string(out.total.item<double>()) + " (" + describe_parts(out) + ")") +
                            "; stopped without saving. Last good checkpoint: " +
                            (s.last_checkpoint.empty() ? "none" : s.last_checkpoint) + " (lower train.lr or check the data)");
      window.add(out);
      window_tokens += batch.real_tokens;
      s.tokens_seen += batch.real_tokens;
    }
    double grad_norm = 0;
    if (s.zero) {
      s.zero->finish_backward();
      grad_norm = s.zero->clip_gradients(t.max_grad_norm);
    } else {
      s.sync->synchronize(s.params);
      grad_norm = clip_gradients(*s.student, t.max_grad_norm, s.optimizer.get());  // folded into a FusedAdamW
    }
    if (!std::isfinite(grad_norm))
      throw TrainingError("step " + std::to_string(s.step + 1) + ": the gradient norm is " + std::to_string(grad_norm) +
                          "; stopped without saving. Last good checkpoint: " +
                          (s.last_checkpoint.empty() ? "none" : s.last_checkpoint));
    if (s.zero) {
      s.zero->step(s.last_lr);
    } else {
      s.optimizer->step();  // after the quantized-weights scope: updates the latent weights
      release_gradients(*s.optimizer);
    }
    ++s.step;

    if (s.step % t.log_interval == 0 || s.step == s.total_steps) {
      const double now_s = std::chrono::duration<double>(Clock::now() - window_start).count();
      const double session_s = std::chrono::duration<double>(Clock::now() - session_start).count();
      const double world = static_cast<double>(s.sync->world_size());  // tokens of all ranks
      const double tps = world * static_cast<double>(window_tokens) / std::max(now_s, 1e-9);
      const double eta = session_s / static_cast<double>(s.step - s.start_step) * static_cast<double>(s.total_steps - s.step);
      Scalars parts = window.means();
      std::vector<double> averaged{window.mean_total()};  // over ranks (a no-op on one process)
      for (const auto& p : parts) averaged.push_back(p.second);
      s.sync->average(averaged);
      const double loss = averaged[0];
      for (size_t i = 0; i < parts.size(); ++i) parts[i].second = averaged[i + 1];
      Scalars values{{"lr", s.last_lr}, {"loss", loss}};
      for (const auto& p : parts) values.push_back(p);
      values.insert(values.end(), {{"grad_norm", grad_norm},
                                   {"tokens", world * static_cast<double>(window_tokens)},
                                   {"tokens_per_s", tps},
                                   {"elapsed_s", s.elapsed_before + session_s}});
      if (s.device.is_cuda()) {  // this rank's GPU: live tensors, allocator cache, peak since the last log
        const auto gpu = runtime::gpu_memory(s.device.index());
        constexpr double kMiB = 1024.0 * 1024.0;
        values.insert(values.end(), {{"gpu_mem_allocated_mib", gpu.allocated_bytes / kMiB},
                                     {"gpu_mem_reserved_mib", gpu.reserved_bytes / kMiB},
                                     {"gpu_mem_peak_mib", gpu.peak_allocated_bytes / kMiB}});
        runtime::reset_gpu_peak(s.device.index());
      }
      s.metrics.write("train", s.step, values);
      Scalars shown;  // the terminal gets the main parts; metrics.jsonl gets all (lafd.layer_i, gamma...)
      for (const auto& p : parts)
        if (p.first.find('.') == std::string::npos) shown.push_back(p);
      s.say(progress_line(s.step, s.total_steps, loss, shown, s.last_lr, tps, eta));
      window.clear();
      window_tokens = 0;
      window_start = Clock::now();
    }
    const bool last = s.step == s.total_steps;
    if (t.eval_interval > 0 && s.step % t.eval_interval == 0 && !last) {
      evaluate_now(false);
      if (s.cfg.eval.interval == 0) run_tasks();
    }
    if (s.cfg.eval.interval > 0 && s.step % s.cfg.eval.interval == 0 && !last) run_tasks();
    std::vector<double> stop_votes{g_stop_requested != 0 ? 1.0 : 0.0};  // every rank stops at the same step
    s.sync->average(stop_votes);
    const bool stop = stop_votes[0] > 0;
    if (last || stop || (t.save_interval > 0 && s.step % t.save_interval == 0)) {
      const double session_s = std::chrono::duration<double>(Clock::now() - session_start).count();
      const double before = s.elapsed_before;
      s.elapsed_before += session_s;
      checkpoint_now();
      s.elapsed_before = before;
    }
    if (stop && !last) {
      summary.interrupted = true;
      s.say("stopped by signal at step " + std::to_string(s.step) + "; continue with --resume");
      break;
    }
  }
  {  // the memory model against the measured peak of training, per rank
    std::vector<double> peak{std::max(steps_peak_mib, runtime::peak_resident_mib())};
    const double own = peak[0];
    s.sync->average(peak);
    constexpr double kMiB = 1024.0 * 1024.0;
    Scalars values{{"predicted_mib", s.memory.total() / kMiB}, {"peak_rss_mib", own}, {"peak_rss_mib_rank_mean", peak[0]}};
    for (const auto& part : s.memory.parts) values.emplace_back("predicted." + part.name, part.bytes / kMiB);
    s.metrics.write("memory", s.step, values);
    char buf[200];
    if (s.device.is_cuda())  // the model describes device memory there; the host's peak is not its measure
      std::snprintf(buf, sizeof(buf), "peak resident set of training (host): %.0f MiB; the memory model (%.0f MiB) is for the "
                    "device: compare gpu_mem_peak_mib", own, s.memory.total() / kMiB);
    else
      std::snprintf(buf, sizeof(buf), "peak resident set of training: %.0f MiB (rank mean %.0f MiB), memory model %.0f MiB (%+.1f%%)",
                    own, peak[0], s.memory.total() / kMiB, 100.0 * (s.memory.total() / kMiB - peak[0]) / peak[0]);
    s.say(buf);
  }
  const double session_s = std::chrono::duration<double>(Clock::now() - session_start).count();
  if (!summary.interrupted && s.step == s.total_steps) {
    summary.final_eval_loss = evaluate_now(false);
    run_tasks();
  }
  summary.steps = s.step;
  summary.last_checkpoint = s.last_checkpoint;
  summary.tokens_per_second = session_s > 0 ? static_cast<double>(s.sync->world_size()) * static_cast<double>(s.tokens_seen) /
                                                  (s.elapsed_before + session_s)
                                            : 0;
  return summary;
}

void Trainer::cleanup() {
  State& s = *s_;
  s.metrics = MetricsLog();
  s.zero.reset();
  s.single_group.reset();
  s.optimizer.reset();
  s.loader.reset();
  s.eval_loader.reset();
  s.teacher = nullptr;
  s.student = nullptr;
  s.setup_done = false;
}

}  // namespace edgerazor::train
