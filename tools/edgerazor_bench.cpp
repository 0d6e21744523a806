// edgerazor-bench: throughput, utilisation and peak memory of one quantization-aware distillation
// (QAD) step, composed from library pieces exactly as a trainer runs it:
//
//   teacher forward (NoGradGuard, hidden states, no logits)
//   { QuantizedWeightsScope: student forward (ternary W, A8 hooks, hidden states, no logits)
//     DistillObjective: 0.1 CE + 2.0 EAKLD(T=1, k=16) + 0.1 LAFD(top-3 cosine), fused chunked
//       CE+KL from the final hidden states and the lm_head weights (no (B, T, V) logits)
//     backward }                       (STE: gradients land on the latent weights)
//   clip_grad_norm(1.0), AdamW step (lr 2e-5, betas 0.9/0.95, wd 0.01), zero_grad(set_to_none)
//
//   edgerazor-bench step --vocab 32000 --dim 512 --layers 8 --heads 8 --kv-heads 8 --ffn 1536 \
//                        --seq 256 --batch 4 --steps 6 --dtype auto|bf16|fp32 [--threads N]
//                        [--device cpu|cuda|cuda:N|auto]
//
// Student: Llama-shaped, quantization preset w1.58a8kv8 without the kv_cache target (ternary
// absmean weights block 256 on every Linear and the embedding, A8 absmax block 256 on every
// Linear input incl. lm_head); teacher: the same shape in full precision (the student starts as
// its copy). --dtype auto = bf16 only where the CPU has native bf16 (avx512_bf16 / amx_bf16),
// fp32 otherwise; in bf16 both models, gradients and AdamW states are bf16 (as `model.to(bf16)`
// in the PyTorch baseline bench/py_eager_step.py).
//
// Output (stdout): one JSON line per step ({"step":i,...}) and a final JSON line with tokens_per_s,
// step_ms (median over the steps after the first, warm-up, one), peak_rss_mb (VmHWM of the whole
// process), mfu (model FLOPs / step time / measured matmul peak), matmul_peak_gflops (best of a
// 2048^3 matmul in the chosen dtype, measured before and after the steps), flops_per_step and the
// FLOP model used, the median time of each phase, system time and page faults per step.
//
// Profiling knobs (environment; bench/README.md): EDGERAZOR_BENCH_TRACE=<file.json> (LibTorch
// profiler trace of the last step), EDGERAZOR_CACHING_ALLOCATOR=0 / EDGERAZOR_MALLOC_TUNING=0
// (allocator A/B, runtime/caching_allocator.h),
// EDGERAZOR_ROW_FUSED_LOSS=0 (the library's general chunked CE + KL path instead of the row-fused
// kernel),
// EDGERAZOR_BENCH_CHECKPOINT=1 (gradient checkpointing of the student).
//
// On a GPU (--device cuda): the same step with models and batch on the device, the device
// synchronized before every clock reading, the matmul peak measured on the device, and the GPU
// memory of the caching allocator reported (peak_gpu_mb: peak of live tensors over the timed
// steps; reserved_gpu_mb: what the allocator holds); dtype auto = bf16 there.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/cuda.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "edgerazor/config/quant_presets.h"
#include "edgerazor/core/cli.h"
#include "edgerazor/core/error.h"
#include "edgerazor/distill/feature_loss.h"
#include "edgerazor/distill/functional.h"
#include "edgerazor/distill/logit_loss.h"
#include "edgerazor/distill/objective.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/quant/hooks.h"
#include "edgerazor/quant/inject.h"
#include "edgerazor/quant/weight_quantizer.h"
#include "edgerazor/runtime/caching_allocator.h"
#include "edgerazor/runtime/device.h"
#include "edgerazor/runtime/gpu_memory.h"
#include "edgerazor/runtime/process_memory.h"
#include "edgerazor/runtime/runtime.h"
#include "edgerazor/train/fused_adamw.h"
#include "edgerazor/train/step.h"

namespace {

using Clock = std::chrono::steady_clock;
// GPU work is asynchronous: with a GPU in use, every clock reading waits for the device first.
bool g_sync_gpu = false;
double ms_since(Clock::time_point t0) {
  if (g_sync_gpu) torch::cuda::synchronize();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct StepArgs {
  int64_t vocab = 32000, dim = 512, layers = 8, heads = 8, kv_heads = 8, ffn = 1536, seq = 256, batch = 4;
  int steps = 6, threads = 0;
  std::string dtype = "auto";
  std::string device = "cpu";
  std::string model_dir;          // an HF folder: its config.json's shapes (and weights when it has them)
  std::string quant = "w1.58a8kv8";  // preset or quantization YAML of the student (KV8 left out unless kv8)
  bool kv8 = false;                  // keep the preset's kv_cache target (K and V fake-quantized)
  bool json = false;  // one JSON line instead of the table
};

// The result as a readable table (the JSON line has every field; --json prints it).
void print_table(const nlohmann::json& j) {
  const auto num = [&](const char* key, const char* format) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, j.value(key, 0.0));
    return std::string(buf);
  };
  const auto& c = j["config"];
  std::printf("edgerazor-bench step: V %lld, C %lld, L %lld, H %lld/%lld, F %lld, T %lld, B %lld, %s, %d threads, %s\n",
              c["vocab"].get<long long>(), c["dim"].get<long long>(), c["layers"].get<long long>(),
              c["heads"].get<long long>(), c["kv_heads"].get<long long>(), c["ffn"].get<long long>(),
              c["seq"].get<long long>(), c["batch"].get<long long>(), j["dtype"].get<std::string>().c_str(),
              j["threads"].get<int>(), j["device"].get<std::string>().c_str());
  std::printf("  %-22s %s\n", "tokens/s", num("tokens_per_s", "%.1f").c_str());
  std::printf("  %-22s %s median, %s min (%d timed steps)\n", "step", (num("step_ms", "%.1f") + " ms").c_str(),
              (num("step_ms_min", "%.1f") + " ms").c_str(), c["steps"].get<int>() - 1);
  std::printf("  %-22s %s of %s GFLOP/s (matmul peak measured here)\n", "MFU",
              (num("mfu", "%.3f")).c_str(), num("matmul_peak_gflops", "%.0f").c_str());
  std::printf("  %-22s %s MiB (model state %s MiB)\n", "peak RSS", num("peak_rss_mb", "%.0f").c_str(),
              num("model_state_mb", "%.0f").c_str());
  if (j.contains("peak_gpu_mb")) std::printf("  %-22s %s MiB\n", "peak GPU", num("peak_gpu_mb", "%.0f").c_str());
  std::printf("  phases (median ms):\n");
  for (const auto& [phase, ms] : j["phases_ms"].items()) std::printf("    %-20s %8.1f\n", phase.c_str(), ms.get<double>());
  std::printf("  (--json prints every field as one JSON line)\n");
}
c10::Device g_device{c10::kCPU};

// ---- machine facts ---------------------------------------------------------------------------

std::string cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return line + " ";
  return "";
}

bool has_native_bf16() {
  const std::string flags = cpu_flags();
  return flags.find(" avx512_bf16 ") != std::string::npos || flags.find(" amx_bf16 ") != std::string::npos;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::vector<double> load_average() {
  std::ifstream in("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  in >> a >> b >> c;
  return {a, b, c};
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The allocator policy a trainer gets: glibc tuning at library load (EDGERAZOR_MALLOC_TUNING=0
// turns it off) plus the caching CPU allocator (EDGERAZOR_CACHING_ALLOCATOR=0 turns it off).
std::string configure_allocator() {
  const char* tuning = std::getenv("EDGERAZOR_MALLOC_TUNING");
  const std::string glibc = tuning && std::string(tuning) == "0" ? "glibc default" : "glibc tuned";
  return edgerazor::runtime::use_caching_cpu_allocator() ? "caching + " + glibc : glibc;
}

// Peak of live tensor memory since the last call (MiB), then restarts the peak.
double live_peak_mib() {
  if (g_device.is_cuda()) {
    const double peak = edgerazor::runtime::gpu_memory(g_device.index()).peak_allocated_bytes / (1024.0 * 1024.0);
    edgerazor::runtime::reset_gpu_peak(g_device.index());
    return peak;
  }
  const double peak = edgerazor::runtime::cpu_memory_stats().peak_live_bytes / (1024.0 * 1024.0);
  edgerazor::runtime::reset_peak_live_bytes();
  return peak;
}

struct Usage {
  double sys_ms = 0, user_ms = 0;
  long minor_faults = 0;
};
Usage usage_now() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  Usage u;
  u.sys_ms = r.ru_stime.tv_sec * 1e3 + r.ru_stime.tv_usec / 1e3;
  u.user_ms = r.ru_utime.tv_sec * 1e3 + r.ru_utime.tv_usec / 1e3;
  u.minor_faults = r.ru_minflt;
  return u;
}

// Best GFLOP/s of an n x n x n matmul in `dtype` over `reps` timed rounds of ~0.3 s each.
double matmul_peak_gflops(at::ScalarType dtype, int64_t n = 2048, int reps = 4) {
  at::NoGradGuard no_grad;
  if (g_device.is_cuda()) n = 8192;  // a 2048^3 matmul is too short to load a data-centre GPU
  const auto options = at::TensorOptions().device(g_device).dtype(dtype);
  const auto a = at::randn({n, n}, options), b = at::randn({n, n}, options);
  auto c = at::mm(a, b);  // warm-up (oneDNN primitive creation, page faults)
  double best = 0.0;
  for (int r = 0; r < reps; ++r) {
    int iters = 0;
    const auto t0 = Clock::now();
    do {
      at::mm_out(c, a, b);
      ++iters;
    } while (ms_since(t0) < 300.0);
    const double s = ms_since(t0) / 1e3;
    best = std::max(best, 2.0 * n * n * n * iters / s / 1e9);
  }
  return best;
}

// ---- FLOP model ------------------------------------------------------------------------------

const char* const kFlopModel =
    "4 * F_fwd (student forward + backward = 3 F_fwd, teacher forward = F_fwd); "
    "F_fwd = 2*B*T*(L*(C*H*D + 2*C*Hkv*D + H*D*C + 3*C*F) + V*C) + 4*B*L*H*T*T*D (attention scores and "
    "values over the full T x T square); embedding lookups, norms, quantizers, losses and the optimizer "
    "count 0; so does the loss's extra GEMM work (row-fused path: 1 more B*T*V*C GEMM, the EAKLD "
    "teacher-entropy pre-pass; general chunked path: 2 more, the logits recomputed in backward)";

double forward_flops(const edgerazor::model::ModelConfig& c, int64_t B, int64_t T) {
  const double C = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const double F = c.intermediate_size, L = c.num_hidden_layers, V = c.vocab_size;
  const double per_token = L * (C * H * D + 2 * C * Hkv * D + H * D * C + 3 * C * F) + V * C;
  return 2.0 * B * T * per_token + 4.0 * B * L * H * double(T) * T * D;
}

// ---- the step --------------------------------------------------------------------------------

edgerazor::model::ModelConfig model_config(StepArgs& a) {
  if (!a.model_dir.empty()) {  // any architecture the zoo reads; the size flags follow it
    edgerazor::model::ModelConfig c = edgerazor::model::load_model_config(a.model_dir + "/config.json");
    c.max_position_embeddings = std::max<int64_t>(c.max_position_embeddings, a.seq);
    a.vocab = c.vocab_size, a.dim = c.hidden_size, a.layers = c.num_hidden_layers, a.heads = c.num_attention_heads;
    a.kv_heads = c.num_key_value_heads, a.ffn = c.intermediate_size;
    return c;
  }
  edgerazor::model::ModelConfig c;
  c.architecture = edgerazor::model::Architecture::kLlama;
  c.vocab_size = a.vocab;
  c.hidden_size = a.dim;
  c.intermediate_size = a.ffn;
  c.num_hidden_layers = a.layers;
  c.num_attention_heads = a.heads;
  c.num_key_value_heads = a.kv_heads;
  if (a.heads <= 0 || a.dim % a.heads != 0)
    throw edgerazor::ConfigError("--dim " + std::to_string(a.dim) + " is not a multiple of --heads " +
                                 std::to_string(a.heads));
  c.head_dim = a.dim / a.heads;
  c.max_position_embeddings = std::max<int64_t>(2048, a.seq);
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = false;
  edgerazor::model::validate(c, "edgerazor-bench flags");
  return c;
}

edgerazor::distill::DistillObjectiveOptions objective_options() {
  namespace d = edgerazor::distill;
  d::DistillObjectiveOptions o;  // paper Qwen3 sub-4-bit setting (spec distillation.md §6)
  o.loss_task_alpha = 0.1;
  auto kd = d::loss_preset("eakld");
  kd.alpha = 2.0;
  kd.temperature = 1.0;
  kd.confidence_k = 16;
  auto fd = d::loss_preset("lafd");
  fd.alpha = 0.1;
  fd.layer_index_adaptive_topk = 3;
  o.losses = {kd, fd};
  o.chunk_size = 256;
  return o;
}

// The phases a step's wall time is split into (ms, in order).
const char* const kPhases[] = {"teacher_forward", "quantize_weights", "student_forward", "loss_forward",
                               "backward", "restore_weights", "clip_grad", "optimizer"};
constexpr int kNumPhases = 8;

struct Bench {
  edgerazor::model::CausalLM teacher{nullptr}, student{nullptr};
  edgerazor::distill::DistillObjective objective{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<at::Tensor> params;
  at::Tensor input_ids, labels;

  // Runs one step; fills phase times (ms) and returns the loss.
  double step(double* phase_ms, double* phase_live) {
    namespace d = edgerazor::distill;
    edgerazor::model::ForwardOptions fo;
    fo.output_hidden_states = true;
    fo.compute_logits = false;  // the objective makes logits chunk by chunk from hidden + weight
    auto t = Clock::now();
    d::ModelOutputs t_out;
    {
      at::NoGradGuard no_grad;
      auto out = teacher->forward(input_ids, fo);
      t_out.hidden_states = std::move(out.hidden_states);
      t_out.final_hidden = t_out.hidden_states.back();
      t_out.lm_head_weight = teacher->lm_head->weight;
    }
    phase_ms[0] = ms_since(t);
    phase_live[0] = live_peak_mib();
    double loss_value = 0.0;
    {
      t = Clock::now();
      edgerazor::quant::QuantizedWeightsScopeOptions scope_options;
      scope_options.defer_embedding_rows = true;  // as the trainer (train/step.cpp)
      edgerazor::quant::QuantizedWeightsScope quantized(*student, scope_options);
      phase_ms[1] = ms_since(t);
    phase_live[1] = live_peak_mib();
      t = Clock::now();
      auto out = student->forward(input_ids, fo);
      d::ModelOutputs s_out;
      s_out.hidden_states = std::move(out.hidden_states);
      s_out.final_hidden = edgerazor::quant::quantize_input(*student->lm_head, s_out.hidden_states.back());  // A8
      s_out.lm_head_weight = student->lm_head->weight;  // holds Q(w) inside the scope
      phase_ms[2] = ms_since(t);
    phase_live[2] = live_peak_mib();
      t = Clock::now();
      const at::Tensor loss = objective(s_out, t_out, labels).total;
      phase_ms[3] = ms_since(t);
    phase_live[3] = live_peak_mib();
      t = Clock::now();
      loss.backward();
      loss_value = loss.item<double>();
      phase_ms[4] = ms_since(t);
    phase_live[4] = live_peak_mib();
      t = Clock::now();
    }
    phase_ms[5] = ms_since(t);
    phase_live[5] = live_peak_mib();
    t = Clock::now();
    edgerazor::train::clip_gradients(params, 1.0, optimizer.get());  // the trainer's: folded into FusedAdamW
    phase_ms[6] = ms_since(t);
    phase_live[6] = live_peak_mib();
    t = Clock::now();
    optimizer->step();
    edgerazor::train::release_gradients(*optimizer);  // zero_grad(set_to_none), as the trainer
    phase_ms[7] = ms_since(t);
    phase_live[7] = live_peak_mib();
    return loss_value;
  }
};

int run_step(StepArgs& a) {
  if (a.threads > 0) edgerazor::runtime::set_threads(a.threads);
  g_device = edgerazor::runtime::resolve_device(a.device, 0, "--device");
  g_sync_gpu = g_device.is_cuda();
  const bool native_bf16 = g_device.is_cuda() || has_native_bf16();
  std::string dtype_name = a.dtype;
  if (dtype_name == "auto") dtype_name = native_bf16 ? "bf16" : "fp32";
  const at::ScalarType dtype = dtype_name == "bf16" ? at::kBFloat16 : at::kFloat;
  for (const auto* flag : {&a.vocab, &a.dim, &a.layers, &a.heads, &a.kv_heads, &a.ffn, &a.seq, &a.batch})
    if (*flag <= 0) throw edgerazor::ConfigError("every size flag must be positive");
  if (a.steps < 1) throw edgerazor::ConfigError("--steps must be >= 1");
  const auto config = model_config(a);

  const std::string allocator = configure_allocator();
  const double peak_start = matmul_peak_gflops(dtype);
  const auto load_start = load_average();

  at::manual_seed(0);
  Bench b;
  bool weights_from_folder = false;
  if (!a.model_dir.empty()) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(a.model_dir, ec))
      weights_from_folder |= e.path().extension() == ".safetensors";
  }
  if (weights_from_folder) {
    b.teacher = edgerazor::io::load_pretrained(a.model_dir, {});
    b.teacher->config.max_position_embeddings = config.max_position_embeddings;
  } else {
    b.teacher = edgerazor::model::CausalLM(config);  // random weights of the shape
  }
  b.student = edgerazor::model::CausalLM(b.teacher->config);
  {
    at::NoGradGuard no_grad;  // QAD starts from the teacher's weights
    auto src = b.teacher->named_parameters(true);
    for (auto& p : b.student->named_parameters(true)) p.value().copy_(src[p.key()]);
  }
  b.teacher->to(g_device, dtype);
  b.student->to(g_device, dtype);
  b.teacher->eval();
  for (auto& p : b.teacher->parameters()) p.requires_grad_(false);
  b.student->train();
  const char* ckpt_env = std::getenv("EDGERAZOR_BENCH_CHECKPOINT");
  const bool checkpointing = ckpt_env && std::string(ckpt_env) == "1";
  b.student->set_gradient_checkpointing(checkpointing);  // recompute each layer in backward
  auto quant = edgerazor::config::quant_config_from_arg(a.quant);
  auto& targets = quant.select.target_types;  // default: ternary W + A8 block 256; KV8 off (not in the step)
  if (!a.kv8) targets.erase(std::remove(targets.begin(), targets.end(), "kv_cache"), targets.end());
  edgerazor::quant::inject(*b.student, quant);
  b.objective = edgerazor::distill::DistillObjective(objective_options());
  b.params = b.student->parameters();
  auto adamw = std::make_unique<edgerazor::train::FusedAdamW>(  // the trainer's AdamW (make_adamw)
      b.params, torch::optim::AdamWOptions(2e-5).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.01));
  adamw->allocate_state();  // as the trainer does when training starts
  b.optimizer = std::move(adamw);
  b.input_ids = at::randint(0, a.vocab, {a.batch, a.seq}, at::kLong).to(g_device);
  b.labels = b.input_ids.clone();  // the objective shifts them (logits at t predict t + 1)

  const int64_t tokens = a.batch * a.seq;
  const double flops = 4.0 * forward_flops(config, a.batch, a.seq);
  const char* trace = std::getenv("EDGERAZOR_BENCH_TRACE");
  const double setup_rss = edgerazor::runtime::resident_mib();
  std::vector<double> step_ms, sys_ms, faults;
  std::vector<std::vector<double>> phases(kNumPhases);
  double last_loss = 0.0, last_live[kNumPhases] = {}, peak_gpu = 0.0;
  for (int i = 0; i < a.steps; ++i) {
    double phase_ms[kNumPhases] = {}, phase_live[kNumPhases] = {};
    const bool traced = trace && *trace && i == a.steps - 1;
    std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
    if (traced) profile = std::make_unique<torch::autograd::profiler::RecordProfile>(trace);
    const Usage u0 = usage_now();
    const auto alloc0 = edgerazor::runtime::cpu_memory_stats();
    const auto t0 = Clock::now();
    last_loss = b.step(phase_ms, phase_live);
    for (int p = 0; p < kNumPhases; ++p) last_live[p] = phase_live[p];
    if (i > 0 || a.steps == 1)
      for (int p = 0; p < kNumPhases; ++p) peak_gpu = std::max(peak_gpu, phase_live[p]);
    const double ms = ms_since(t0);
    const Usage u1 = usage_now();
    profile.reset();
    nlohmann::json j;
    j["step"] = i;
    j["step_ms"] = ms;
    j["loss"] = last_loss;
    j["sys_ms"] = u1.sys_ms - u0.sys_ms;
    j["minor_faults"] = u1.minor_faults - u0.minor_faults;
    const auto alloc1 = edgerazor::runtime::cpu_memory_stats();
    const double missed_mib = (alloc1.missed_bytes - alloc0.missed_bytes) / (1024.0 * 1024.0);
    j["cache_missed_mb"] = missed_mib;
    j["cache_evicted_mb"] = (alloc1.evicted_bytes - alloc0.evicted_bytes) / (1024.0 * 1024.0);
    for (int p = 0; p < kNumPhases; ++p) j["phases_ms"][kPhases[p]] = phase_ms[p];
    if (a.json) {
      std::cout << j.dump() << std::endl;
    } else {
      std::fprintf(stderr, "step %d: %.1f ms, loss %.4f, %ld page faults, %.0f MiB new blocks%s\n", i, ms, last_loss,
                   u1.minor_faults - u0.minor_faults, missed_mib,
                   i == 0 && a.steps > 1 ? " (warm-up)" : "");
    }
    if (i > 0 || a.steps == 1) {
      step_ms.push_back(ms);
      sys_ms.push_back(u1.sys_ms - u0.sys_ms);
      faults.push_back(static_cast<double>(u1.minor_faults - u0.minor_faults));
      for (int p = 0; p < kNumPhases; ++p) phases[p].push_back(phase_ms[p]);
    }
  }
  const double step_median = median(step_ms);
  const double peak_rss = edgerazor::runtime::peak_resident_mib();
  // The matmul peak is measured before and after the steps; the higher one counts (a busy
  // machine lowers both, and a lower peak would flatter the utilisation).
  const double peak_end = matmul_peak_gflops(dtype);
  const double peak_gflops = std::max(peak_start, peak_end);
  nlohmann::json j;
  j["bench"] = "edgerazor-bench step";
  j["impl"] = "edgerazor (LibTorch C++)";
  j["tokens_per_s"] = tokens / (step_median / 1e3);
  j["step_ms"] = step_median;
  j["step_ms_min"] = *std::min_element(step_ms.begin(), step_ms.end());
  j["peak_rss_mb"] = peak_rss;
  j["setup_rss_mb"] = setup_rss;
  j["mfu"] = flops / (step_median / 1e3) / (peak_gflops * 1e9);
  j["matmul_peak_gflops"] = peak_gflops;
  j["matmul_peak_gflops_start_end"] = {peak_start, peak_end};
  j["achieved_gflops"] = flops / (step_median / 1e3) / 1e9;
  j["flops_per_step"] = flops;
  j["flop_model"] = kFlopModel;
  j["dtype"] = dtype_name;
  j["native_bf16"] = native_bf16;
  j["threads"] = at::get_num_threads();
  j["cpu"] = cpu_model();
  j["device"] = g_device.str();
  if (g_device.is_cuda()) {
    j["peak_gpu_mb"] = peak_gpu;
    j["reserved_gpu_mb"] = edgerazor::runtime::gpu_memory(g_device.index()).reserved_bytes / (1024.0 * 1024.0);
  }
  j["config"] = {{"vocab", a.vocab}, {"dim", a.dim},       {"layers", a.layers}, {"heads", a.heads},
                 {"kv_heads", a.kv_heads}, {"ffn", a.ffn}, {"seq", a.seq},       {"batch", a.batch},
                 {"steps", a.steps}};
  if (!a.model_dir.empty()) j["config"]["model"] = a.model_dir;
  j["config"]["quant"] = a.quant;
  j["config"]["kv8"] = a.kv8;
  j["student_parameters"] = edgerazor::quant::count_parameters(*b.student);
  // Teacher + student weights, student gradients and the two AdamW moments, all in the step dtype.
  const double params = static_cast<double>(edgerazor::quant::count_parameters(*b.student));
  j["model_state_mb"] = params * 5 * at::elementSize(dtype) / (1024.0 * 1024.0);
  j["peak_minus_state_mb"] = peak_rss - params * 5 * at::elementSize(dtype) / (1024.0 * 1024.0);
  j["loss"] = last_loss;
  j["allocator"] = allocator;
  j["gradient_checkpointing"] = checkpointing;
  const char* row_fused_env = std::getenv("EDGERAZOR_ROW_FUSED_LOSS");
  j["loss_kernel"] = row_fused_env && std::string(row_fused_env) == "0" ? "chunked ATen (fused_logit_losses)"
                                                                          : "row-fused (row_fused_losses)";
  j["sys_ms_per_step"] = median(sys_ms);
  j["minor_faults_per_step"] = median(faults);
  for (int p = 0; p < kNumPhases; ++p) j["phases_ms"][kPhases[p]] = median(phases[p]);
  // Where the peak is reached: the high-water mark of live tensor memory within each phase of the
  // last step (caching allocator; the cache and non-tensor memory come on top).
  for (int p = 0; p < kNumPhases; ++p) j["peak_live_tensors_mb"][kPhases[p]] = last_live[p];
  j["cached_free_blocks_mb"] = edgerazor::runtime::cpu_memory_stats().cached_bytes / (1024.0 * 1024.0);
  j["load_average"] = {{"start", load_start}, {"end", load_average()}};
  if (a.json) {
    std::cout << j.dump() << std::endl;
  } else {
    print_table(j);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-bench", [&] {
    CLI::App app{"EdgeRazor benchmarks"};
    app.require_subcommand(1);
    StepArgs a;
    auto* step = app.add_subcommand("step", "time one QAD step (ternary+A8 student, CE+EAKLD+LAFD, AdamW)");
    step->add_option("--vocab", a.vocab, "V")->capture_default_str();
    step->add_option("--dim", a.dim, "C (hidden size)")->capture_default_str();
    step->add_option("--layers", a.layers, "L")->capture_default_str();
    step->add_option("--heads", a.heads, "H")->capture_default_str();
    step->add_option("--kv-heads", a.kv_heads, "H_kv")->capture_default_str();
    step->add_option("--ffn", a.ffn, "MLP width")->capture_default_str();
    step->add_option("--seq", a.seq, "T (tokens per sequence)")->capture_default_str();
    step->add_option("--batch", a.batch, "B (sequences per step)")->capture_default_str();
    step->add_option("--steps", a.steps, "steps; the first is a warm-up excluded from the median")
        ->capture_default_str();
    step->add_option("--dtype", a.dtype, "auto (bf16 where the CPU has native bf16) | bf16 | fp32")
        ->check(CLI::IsMember({"auto", "bf16", "fp32"}))
        ->capture_default_str();
    step->add_option("--threads", a.threads, "intra-op threads (default: all cores)");
    step->add_option("--device", a.device, "cpu | cuda | cuda:N | auto")->capture_default_str();
    step->add_option("--model", a.model_dir, "HF folder whose config.json gives the shapes (weights too when it has safetensors; e.g. bench/qwen3-0.6b)");
    step->add_option("--quant", a.quant, "the student's quantization: preset or YAML (KV8 is left out)")->capture_default_str();
    step->add_flag("--kv8", a.kv8, "keep the preset's KV8 (K and V fake-quantized in attention)");
    step->add_flag("--json", a.json, "print the result as one JSON line (every field) instead of a table");
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? 0 : 2;
    }
    return run_step(a);
  });
}
