// Row-fused CE + KL (T = 1) with the gradient computed in forward. See the header; the maths is
// distill/fused_logit_loss.cpp's run_chunk, per row:
//   ls = log_softmax(zs), lt = log_softmax(zt), ps = exp(ls), pt = exp(lt), E = 1e-8
//   lsc = max(ls, log E), ltc = max(lt, log E), live = ls >= log E
//   CE = -ls[target], H = -sum pt log(pt + E), KLf = sum exp(ltc)(ltc - lsc), KLr = sum exp(lsc)(lsc - ltc)
//   dCE/dz = ps - onehot, dKLf/dz = ps sum(a) - a with a = exp(ltc) live,
//   dKLr/dz = ps (h - sum(ps h)) with h = (lsc - ltc + 1) live
// Legend: N rows (B * T), C hidden, V vocab, n rows in a chunk.
#include "edgerazor/distill/row_fused_loss.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "../runtime/openmp_required.h"
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "edgerazor/distill/functional.h"
#include "edgerazor/runtime/autocast.h"
#include "../core/vec16.h"

namespace edgerazor::distill {
namespace {

using namespace core::vec16;  // NOLINT: the 16-lane helpers, src/core/vec16.h

// exp(z - max) of one row into e; returns max and sum.
template <typename T>
ER_INLINE void row_exp(const T* z, int64_t V, float* e, float& m, float& s) {
  vf vmax = splat(-INFINITY);
  for (int64_t j = 0; j < V; j += kLanes) {
    const vf a = load_n(z + j, std::min(kLanes, V - j), -INFINITY);
    vmax = select(a > vmax, a, vmax);
  }
  m = hmax(vmax);
  vf acc = {};
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    const vf a = exp_neg(load_n(z + j, n, -INFINITY) - m) * lane_mask(n);
    store_n(e + j, a, n);
    acc += a;
  }
  s = hsum(acc);
}

// Teacher entropy H = -sum pt log(pt + E) of one row (the EAKLD pre-pass).
template <typename T>
ER_INLINE float row_entropy_impl(const T* zt, int64_t V, float* et) {
  const float eps = static_cast<float>(kProbEps);
  float mt, st;
  row_exp(zt, V, et, mt, st);
  const float it = 1.0f / st;
  vf acc = {};
  for (int64_t j = 0; j < V; j += kLanes) {
    const vf pt = load_n(et + j, std::min(kLanes, V - j), 0.0f) * it;  // tail lanes: 0 * log(E) = 0
    acc += pt * log_pos(pt + eps);
  }
  return -hsum(acc);
}

struct RowValues {
  float nll, kl_fwd, kl_rev;
};

// Values of one row, and dz = c_ce (ps - onehot) + c_f (ps sum(a) - a) + c_r ps (h - sum(ps h))
// written in T (skipped when dz is null). dz may be zs itself: the last pass reads each 16-lane
// group of zs before it writes the same group of dz.
template <typename T>
ER_INLINE RowValues row_fused_impl(const T* zs, const T* zt, int64_t V, int64_t target, float c_ce, float c_f,
                                   float c_r, T* dz, float* es, float* et) {
  const float log_eps = std::log(static_cast<float>(kProbEps)), eps = static_cast<float>(kProbEps);
  float ms, mt, ss, st;
  row_exp(zs, V, es, ms, ss);
  row_exp(zt, V, et, mt, st);
  const float cs = ms + std::log(ss), ct = mt + std::log(st), is = 1.0f / ss, it = 1.0f / st;
  vf acc_f = {}, acc_r = {}, acc_a = {}, acc_psh = {};
  for (int64_t j = 0; j < V; j += kLanes) {  // tail lanes: logits -inf, probabilities 0 -> add 0
    const int64_t n = std::min(kLanes, V - j);
    const vf ls = load_n(zs + j, n, -INFINITY) - cs, lt = load_n(zt + j, n, -INFINITY) - ct;
    const vf ps = load_n(es + j, n, 0.0f) * is, pt = load_n(et + j, n, 0.0f) * it;
    const vi s_small = ls < log_eps, t_small = lt < log_eps;
    const vf lsc = select(s_small, splat(log_eps), ls), ltc = select(t_small, splat(log_eps), lt);
    const vf psc = select(s_small, splat(eps), ps), ptc = select(t_small, splat(eps), pt);
    acc_f += ptc * (ltc - lsc);
    acc_r += psc * (lsc - ltc);
    const vf a = select(s_small, vf{}, ptc);                  // exp(ltc) where the student is live
    acc_a += a;
    acc_psh += ps * select(s_small, vf{}, ls - ltc + 1.0f);  // ps h
  }
  RowValues r;
  r.nll = target >= 0 ? cs - load_n(zs + target, 1, 0.0f)[0] : 0.0f;
  r.kl_fwd = hsum(acc_f);
  r.kl_rev = hsum(acc_r);
  if (dz == nullptr) return r;
  const float sum_a = hsum(acc_a), sum_psh = hsum(acc_psh);
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    const vf ls = load_n(zs + j, n, -INFINITY) - cs, lt = load_n(zt + j, n, -INFINITY) - ct;
    const vf ps = load_n(es + j, n, 0.0f) * is, pt = load_n(et + j, n, 0.0f) * it;
    const vi live = ls >= log_eps, t_small = lt < log_eps;
    const vf ltc = select(t_small, splat(log_eps), lt), ptc = select(t_small, splat(eps), pt);
    const vf a = select(live, ptc, vf{});
    const vf h = select(live, ls - ltc + 1.0f, vf{});
    store_n(dz + j, c_ce * ps + c_f * (ps * sum_a - a) + c_r * ps * (h - sum_psh), n);
  }
  if (target >= 0) {
    const float v = load_n(dz + target, 1, 0.0f)[0] - c_ce;
    store_n(dz + target, splat(v), 1);
  }
  return r;
}

// Non-template entry points, one clone per instruction set (picked at load time).
#define ER_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
ER_CLONES float row_entropy_f32(const float* zt, int64_t V, float* et) { return row_entropy_impl(zt, V, et); }
ER_CLONES float row_entropy_bf16(const uint16_t* zt, int64_t V, float* et) { return row_entropy_impl(zt, V, et); }
ER_CLONES RowValues row_fused_f32(const float* zs, const float* zt, int64_t V, int64_t t, float c_ce, float c_f,
                                  float c_r, float* dz, float* es, float* et) {
  return row_fused_impl(zs, zt, V, t, c_ce, c_f, c_r, dz, es, et);
}
ER_CLONES RowValues row_fused_bf16(const uint16_t* zs, const uint16_t* zt, int64_t V, int64_t t, float c_ce,
                                   float c_f, float c_r, uint16_t* dz, float* es, float* et) {
  return row_fused_impl(zs, zt, V, t, c_ce, c_f, c_r, dz, es, et);
}

// ---- chunk loop --------------------------------------------------------------------------------

struct Plan {
  int64_t chunk = 256, rows = 0, vocab = 0;
  at::Tensor ce_targets, ce_weights;          // (N) int64 (-1 = none) / float (zeros when no CE)
  at::Tensor kl_weights, gamma_weights;       // (N) float (zeros when absent)
  bool has_entropy = false;                   // the term's statistic is the teacher entropy
  bool want_hidden = false, want_weight = false;  // gradients to produce
  at::Tensor teacher_hidden, teacher_weight;  // (N, C), (V, C)
};

at::Tensor chunk_logits(const at::Tensor& hidden, const at::Tensor& weight, int64_t r0, int64_t n) {
  return at::mm(hidden.narrow(0, r0, n), weight.t());  // (n, V) contiguous, in the input dtype
}

const uint16_t* bf16_ptr(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); }
uint16_t* bf16_ptr(at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

// The teacher logits of every chunk are kept from the entropy pre-pass for the main pass when they
// take at most this much (one vocabulary GEMM less per step: 1 of the loss's 5 at B·T 1024 and
// V 32000 (65 MiB), 155 MiB at Qwen3's V 151936 and T 512); above it they are computed again.
constexpr int64_t kKeptTeacherLogitsBytes = int64_t{768} << 20;
// Rows whose logits take at most this much are one chunk (row_fused_losses).
constexpr int64_t kSingleChunkBytes = int64_t{320} << 20;

// sum over rows of gamma_weights * teacher entropy (teacher-only GEMMs); `kept`: the chunks' logits.
double entropy_statistic(const Plan& p, std::vector<at::Tensor>* kept) {
  double stat = 0.0;
  const float* wg = p.gamma_weights.data_ptr<float>();
  std::vector<float> h(std::min(p.chunk, p.rows));
  for (int64_t r0 = 0; r0 < p.rows; r0 += p.chunk) {
    const int64_t n = std::min(p.chunk, p.rows - r0), V = p.vocab;
    const at::Tensor zt = chunk_logits(p.teacher_hidden, p.teacher_weight, r0, n);
    const bool bf16 = zt.scalar_type() == at::kBFloat16;
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> scratch(V);
      for (int64_t r = begin; r < end; ++r)
        h[r] = bf16 ? row_entropy_bf16(bf16_ptr(zt) + r * V, V, scratch.data())
                    : row_entropy_f32(zt.data_ptr<float>() + r * V, V, scratch.data());
    });
    for (int64_t r = 0; r < n; ++r) stat += static_cast<double>(wg[r0 + r]) * h[r];
    if (kept) kept->push_back(zt);
  }
  return stat;
}

struct Sums {
  double ce = 0, fwd = 0, rev = 0, stat = 0;
};

// Rows of one chunk: adds the weighted values to `sums` and writes dz (n, V) in the logits' dtype
// (unless dz is undefined: no gradient wanted).
void fused_chunk(const Plan& p, const at::Tensor& zs, const at::Tensor& zt, int64_t r0,
                 const RowFusedCoefficients& c, at::Tensor& dz, Sums& sums) {
  const int64_t n = zs.size(0), V = zs.size(1);
  std::vector<RowValues> values(n);
  const int64_t* tg = p.ce_targets.data_ptr<int64_t>() + r0;
  const float* wce = p.ce_weights.data_ptr<float>() + r0;
  const float* wkl = p.kl_weights.data_ptr<float>() + r0;
  const bool bf16 = zs.scalar_type() == at::kBFloat16, grad = dz.defined();
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(2 * V);
    for (int64_t r = begin; r < end; ++r) {
      const float a = static_cast<float>(wce[r] * c.ce), f = static_cast<float>(wkl[r] * c.forward),
                  b = static_cast<float>(wkl[r] * c.reverse);
      values[r] = bf16 ? row_fused_bf16(bf16_ptr(zs) + r * V, bf16_ptr(zt) + r * V, V, tg[r], a, f, b,
                                        grad ? bf16_ptr(dz) + r * V : nullptr, scratch.data(), scratch.data() + V)
                       : row_fused_f32(zs.data_ptr<float>() + r * V, zt.data_ptr<float>() + r * V, V, tg[r], a, f,
                                       b, grad ? dz.data_ptr<float>() + r * V : nullptr, scratch.data(), scratch.data() + V);
    }
  });
  for (int64_t r = 0; r < n; ++r) {
    sums.ce += static_cast<double>(wce[r]) * values[r].nll;
    sums.fwd += static_cast<double>(wkl[r]) * values[r].kl_fwd;
    sums.rev += static_cast<double>(wkl[r]) * values[r].kl_rev;
  }
}

class RowFusedFunction : public torch::autograd::Function<RowFusedFunction> {
 public:
  // Outputs: total (differentiable), then the detached ce, forward, reverse and statistic.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden,
                                                const at::Tensor& weight, const Plan& p, const RowFusedRule& rule) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKeySet(c10::DispatchKey::AutocastCPU));
    Sums sums;
    std::vector<at::Tensor> teacher_logits;  // per chunk, from the pre-pass (empty: compute them here)
    const bool keep = p.rows * p.vocab * p.teacher_weight.element_size() <= kKeptTeacherLogitsBytes;
    if (p.has_entropy) sums.stat = entropy_statistic(p, keep ? &teacher_logits : nullptr);
    const RowFusedCoefficients c = rule(sums.stat);
    const bool want_hidden = p.want_hidden, want_weight = p.want_weight;
    at::Tensor grad_hidden = want_hidden ? at::empty_like(hidden) : at::Tensor();
    // Reduced-precision weights accumulate their gradient over chunks in fp32, rounded once; with
    // one chunk the GEMM's own fp32 accumulation does it.
    const bool exact = weight.scalar_type() == at::kFloat, one_chunk = p.chunk >= p.rows;
    const bool accumulate = want_weight && !one_chunk;
    at::Tensor grad_weight = accumulate ? at::zeros(weight.sizes(), weight.options().dtype(at::kFloat)) : at::Tensor();
    at::Tensor product = accumulate && !exact ? at::empty(weight.sizes(), weight.options()) : at::Tensor();
    for (int64_t r0 = 0, k = 0; r0 < p.rows; r0 += p.chunk, ++k) {
      const int64_t n = std::min(p.chunk, p.rows - r0);
      const at::Tensor zs = chunk_logits(hidden, weight, r0, n);
      at::Tensor zt = teacher_logits.empty() ? chunk_logits(p.teacher_hidden, p.teacher_weight, r0, n)
                                             : std::move(teacher_logits[static_cast<size_t>(k)]);
      // The kernel reads each element of a row's logits before it writes its gradient there: dz
      // takes the student logits' place (one (n, V) buffer less).
      at::Tensor dz_rows = want_hidden || want_weight ? zs : at::Tensor();
      fused_chunk(p, zs, zt, r0, c, dz_rows, sums);
      if (want_hidden) {
        at::Tensor grad_rows = grad_hidden.narrow(0, r0, n);
        at::mm_out(grad_rows, dz_rows, weight);
      }
      if (want_weight) {
        const at::Tensor rows = hidden.narrow(0, r0, n);
        if (!accumulate) {
          grad_weight = at::mm(dz_rows.t(), rows);
        } else if (exact) {
          grad_weight.addmm_(dz_rows.t(), rows);
        } else {
          at::mm_out(product, dz_rows.t(), rows);
          grad_weight.add_(product);
        }
      }
    }
    product = at::Tensor();
    if (accumulate && !exact) grad_weight = grad_weight.to(weight.scalar_type());
    ctx->saved_data["grad_hidden"] = grad_hidden;
    ctx->saved_data["grad_weight"] = grad_weight;
    auto scalar = [](double v) { return at::scalar_tensor(v, at::kFloat); };
    const double total = c.ce * sums.ce + c.forward * sums.fwd + c.reverse * sums.rev;
    torch::autograd::variable_list detached{scalar(sums.ce), scalar(sums.fwd), scalar(sums.rev), scalar(sums.stat)};
    ctx->mark_non_differentiable(detached);
    torch::autograd::variable_list out{scalar(total)};
    out.insert(out.end(), detached.begin(), detached.end());
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto& saved = ctx->saved_data;
    TORCH_CHECK(saved.count("grad_hidden") != 0,
                "distill: row_fused_losses computes its gradients once, in forward; a second backward through "
                "it (retain_graph) is not supported (DistillObjectiveOptions::row_fused = false allows it)");
    // Taken out of the context, so that autograd can move them into .grad instead of copying.
    at::Tensor grad_hidden = saved["grad_hidden"].toTensor();
    at::Tensor grad_weight = saved["grad_weight"].toTensor();
    saved.erase("grad_hidden");
    saved.erase("grad_weight");
    const double g = grads[0].defined() ? grads[0].item<double>() : 0.0;
    if (g != 1.0) {
      if (grad_hidden.defined()) grad_hidden = grad_hidden * g;
      if (grad_weight.defined()) grad_weight = grad_weight * g;
    }
    return {grad_hidden, grad_weight, at::Tensor(), at::Tensor()};
  }
};

using runtime::cpu_autocast_dtype;

bool float_or_bf16(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16;
}

// The dtype the GEMMs and the kernel run in: autocast's when it is on, else the tensors' own.
at::ScalarType compute_dtype(const LogitsSource& student) {
  return cpu_autocast_dtype().value_or(student.hidden.scalar_type());
}

}  // namespace

bool row_fused_supported(const LogitsSource& student, const LogitsSource& teacher, const FusedLogitRequest& request) {
  if (request.chunk_size <= 0) return false;
  if (student.has_logits() || !student.hidden.defined() || !student.weight.defined()) return false;
  if (!student.hidden.device().is_cpu() || !student.weight.device().is_cpu()) return false;
  if (request.terms.size() != 1) return false;
  const auto& t = request.terms[0];
  if (std::max(t.temperature, kMinTemperature) != 1.0) return false;
  if (t.gamma_stat == FusedGammaStat::target_prob) return false;
  if (!teacher.defined() || teacher.has_logits() || !teacher.hidden.device().is_cpu()) return false;
  for (const auto* t : {&student.hidden, &student.weight, &teacher.hidden, &teacher.weight})
    if (!float_or_bf16(*t)) return false;
  const at::ScalarType compute = compute_dtype(student);
  if (compute != at::kFloat && compute != at::kBFloat16) return false;
  // Without autocast, mixed dtypes are the caller's business: the general path handles them.
  const auto dt = student.hidden.scalar_type();
  return cpu_autocast_dtype().has_value() || (student.weight.scalar_type() == dt && teacher.hidden.scalar_type() == dt &&
                                              teacher.weight.scalar_type() == dt);
}

RowFusedResult row_fused_losses(const LogitsSource& student, const LogitsSource& teacher,
                                const FusedLogitRequest& request, const RowFusedRule& rule) {
  TORCH_CHECK(row_fused_supported(student, teacher, request), "distill: row_fused_losses: unsupported request");
  const int64_t B = student.batch(), T = student.tokens(), V = student.vocab(), C = student.hidden.size(2);
  TORCH_CHECK(student.hidden.dim() == 3 && student.weight.dim() == 2 && student.weight.size(1) == C,
              "distill: student hidden (B, T, C) ", student.hidden.sizes(), " does not match lm_head weight (V, C) ",
              student.weight.sizes());
  TORCH_CHECK(teacher.batch() == B && teacher.tokens() == T && teacher.vocab() == V &&
                  teacher.hidden.size(2) == teacher.weight.size(1),
              "distill: teacher hidden ", teacher.hidden.sizes(), " / lm_head ", teacher.weight.sizes(),
              " do not match the student's (B, T, V) = (", B, ", ", T, ", ", V, ")");
  Plan p;
  p.rows = B * T;
  p.vocab = V;
  p.chunk = request.chunk_size;
  // One chunk (whatever chunk_size says) when all rows' logits take little memory: the lm_head gradient then
  // comes from one GEMM (fp32 accumulation inside it, rounded once) instead of an fp32 accumulator
  // plus a product buffer of (V, C) each (933 MiB at Qwen3's vocabulary), and the GEMMs are larger.
  const int64_t logit_bytes = at::elementSize(compute_dtype(student));
  if (p.rows * V * logit_bytes <= kSingleChunkBytes) p.chunk = std::max(p.chunk, p.rows);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const bool has_ce = request.ce_targets.defined();
  p.ce_targets = has_ce ? request.ce_targets.reshape({p.rows}).to(at::kLong).contiguous()
                        : at::full({p.rows}, -1, at::kLong);
  if (has_ce && p.rows > 0)
    TORCH_CHECK(p.ce_targets.max().item<int64_t>() < V, "distill: a label id is >= the vocabulary size ", V);
  p.ce_targets = p.ce_targets.clamp_min(-1);
  p.ce_weights = has_ce ? request.ce_weights.reshape({p.rows}).to(f32).contiguous() : at::zeros({p.rows}, f32);
  const auto& term = request.terms[0];
  TORCH_CHECK(!(term.forward || term.reverse) || term.weights.defined(), "distill: a KL term needs its reduction weights");
  p.kl_weights = term.weights.defined() ? term.weights.reshape({p.rows}).to(f32).contiguous() : at::zeros({p.rows}, f32);
  p.has_entropy = term.gamma_stat == FusedGammaStat::entropy;
  p.gamma_weights = p.has_entropy ? term.gamma_weights.reshape({p.rows}).to(f32).contiguous() : at::zeros({p.rows}, f32);
  // Under autocast the inputs are cast here (differentiably: the gradients go back to the
  // inputs' dtype), and autocast is off inside the kernel.
  const at::ScalarType compute = compute_dtype(student);
  p.teacher_hidden = teacher.hidden.detach().reshape({p.rows, teacher.hidden.size(2)}).to(compute).contiguous();
  p.teacher_weight = teacher.weight.detach().to(compute).contiguous();
  const bool grad_mode = c10::GradMode::is_enabled();
  p.want_hidden = grad_mode && student.hidden.requires_grad();
  p.want_weight = grad_mode && student.weight.requires_grad();
  // A term that does not ask for a direction contributes nothing to it.
  const RowFusedRule masked = [&](double stat) {
    RowFusedCoefficients c = rule(stat);
    if (!has_ce) c.ce = 0.0;
    if (!term.forward) c.forward = 0.0;
    if (!term.reverse) c.reverse = 0.0;
    return c;
  };
  const auto outs = RowFusedFunction::apply(student.hidden.reshape({p.rows, C}).to(compute).contiguous(),
                                            student.weight.to(compute).contiguous(), p, masked);
  RowFusedResult r;
  r.total = outs[0];
  r.ce = outs[1];
  r.forward = term.forward ? outs[2] : at::zeros({}, f32);  // "zero if not asked", as fused_logit_losses
  r.reverse = term.reverse ? outs[3] : at::zeros({}, f32);
  r.stat = outs[4];
  return r;
}

}  // namespace edgerazor::distill
