// Row-fused CE + KL (T = 1) + entropy statistic on CPU. See the header; the maths is
// distill/fused_logit_loss.cpp's run_chunk, per row:
//   ls = log_softmax(zs), lt = log_softmax(zt), ps = exp(ls), pt = exp(lt), E = 1e-8
//   lsc = max(ls, log E), ltc = max(lt, log E), live = ls >= log E
//   CE = -ls[target], H = -sum pt log(pt + E), KLf = sum exp(ltc)(ltc - lsc), KLr = sum exp(lsc)(lsc - ltc)
//   dCE/dz = ps - onehot, dKLf/dz = ps sum(a) - a with a = exp(ltc) live,
//   dKLr/dz = ps (h - sum(ps h)) with h = (lsc - ltc + 1) live
// Legend: N rows (B * T), C hidden, V vocab, n rows in a chunk.
#include "fast_logit_loss.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "edgerazor/distill/functional.h"

namespace edgerazor::bench {
namespace {

using distill::FusedGammaStat;
using distill::FusedLogitRequest;
using distill::FusedLogitResult;
using distill::LogitsSource;

#define ER_INLINE inline __attribute__((always_inline))

// ---- 16-lane vectors (GCC vector extensions; each target clone lowers them to its ISA) -----------

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef uint32_t vu __attribute__((vector_size(64)));
typedef uint16_t vh __attribute__((vector_size(32)));
constexpr int64_t kLanes = 16;

ER_INLINE vf splat(float x) { return vf{} + x; }
ER_INLINE vf select(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }
ER_INLINE float hsum(vf v) {
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += v[l];
  return static_cast<float>(s);
}
ER_INLINE float hmax(vf v) {
  float m = v[0];
  for (int l = 1; l < kLanes; ++l) m = v[l] > m ? v[l] : m;
  return m;
}
ER_INLINE vf from_bf16(vh h) { return (vf)(__builtin_convertvector(h, vu) << 16); }
ER_INLINE vh to_bf16(vf v) {  // round to nearest even, NaN stays NaN (like c10::BFloat16)
  const vu u = (vu)v;
  const vu r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const vu nan = (vu)(v != v);
  return __builtin_convertvector((r & ~nan) | (0x7fc0u & nan), vh);
}
// n valid lanes from p, the rest `fill`.
ER_INLINE vf load_n(const float* p, int64_t n, float fill) {
  vf v;
  if (n == kLanes) {
    std::memcpy(&v, p, sizeof v);
  } else {
    v = splat(fill);
    for (int64_t l = 0; l < n; ++l) v[l] = p[l];
  }
  return v;
}
ER_INLINE vf load_n(const uint16_t* p, int64_t n, float fill) {
  if (n == kLanes) {
    vh h;
    std::memcpy(&h, p, sizeof h);
    return from_bf16(h);
  }
  vh h = {};
  for (int64_t l = 0; l < n; ++l) h[l] = p[l];
  vf v = from_bf16(h);
  for (int64_t l = n; l < kLanes; ++l) v[l] = fill;
  return v;
}
ER_INLINE void store_n(float* p, vf v, int64_t n) {
  if (n == kLanes) std::memcpy(p, &v, sizeof v);
  else for (int64_t l = 0; l < n; ++l) p[l] = v[l];
}
ER_INLINE void store_n(uint16_t* p, vf v, int64_t n) {
  const vh h = to_bf16(v);
  if (n == kLanes) std::memcpy(p, &h, sizeof h);
  else for (int64_t l = 0; l < n; ++l) p[l] = h[l];
}
ER_INLINE vf lane_mask(int64_t n) {  // 1 for the first n lanes, 0 after
  vf m;
  for (int64_t l = 0; l < kLanes; ++l) m[l] = l < n ? 1.0f : 0.0f;
  return m;
}

// exp for x <= 0 (Cephes expf polynomial, relative error ~2e-7); x < -87 gives ~1e-38.
ER_INLINE vf exp_neg(vf x) {
  x = select(x < -87.0f, splat(-87.0f), x);
  const vf fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const vf r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * (vf)((__builtin_convertvector(fn, vi) + 127) << 23);
}

// log for positive normal x (Cephes logf, relative error ~2e-7).
ER_INLINE vf log_pos(vf x) {
  const vu u = (vu)x;
  vf e = __builtin_convertvector((vi)((u >> 23) & 0xffu) - 126, vf);
  vf m = (vf)((u & 0x7fffffu) | 0x3f000000u);  // [0.5, 1)
  const vi small = m < 0.707106781186547524f;
  e = select(small, e - 1.0f, e);
  m = select(small, m + m - 1.0f, m - 1.0f);
  const vf z = m * m;
  vf y = splat(7.0376836292e-2f);
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y = y + e * -2.12194440e-4f;
  y = y - 0.5f * z;
  return m + y + e * 0.693359375f;
}

// Per-row softmax statistics; fills es/et with exp(z - max).
template <typename T>
ER_INLINE void row_softmax(const T* zs, const T* zt, int64_t V, float* es, float* et, float& ms, float& mt, float& ss,
                           float& st) {
  vf max_s = splat(-INFINITY), max_t = splat(-INFINITY);
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    const vf a = load_n(zs + j, n, -INFINITY), b = load_n(zt + j, n, -INFINITY);
    max_s = select(a > max_s, a, max_s);
    max_t = select(b > max_t, b, max_t);
  }
  ms = hmax(max_s);
  mt = hmax(max_t);
  vf acc_s = {}, acc_t = {};
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    const vf keep = lane_mask(n);
    const vf a = exp_neg(load_n(zs + j, n, -INFINITY) - ms) * keep;
    const vf b = exp_neg(load_n(zt + j, n, -INFINITY) - mt) * keep;
    store_n(es + j, a, n);
    store_n(et + j, b, n);
    acc_s += a;
    acc_t += b;
  }
  ss = hsum(acc_s);
  st = hsum(acc_t);
}

struct RowForward {
  float nll, entropy, kl_fwd, kl_rev;
};

template <typename T>
ER_INLINE RowForward row_forward_impl(const T* zs, const T* zt, int64_t V, int64_t target, float* es, float* et) {
  const float log_eps = std::log(static_cast<float>(distill::kProbEps)), eps = static_cast<float>(distill::kProbEps);
  float ms, mt, ss, st;
  row_softmax(zs, zt, V, es, et, ms, mt, ss, st);
  const float cs = ms + std::log(ss), ct = mt + std::log(st), is = 1.0f / ss, it = 1.0f / st;
  vf acc_h = {}, acc_f = {}, acc_r = {};
  for (int64_t j = 0; j < V; j += kLanes) {  // tail lanes: logits -inf, probabilities 0 -> add 0
    const int64_t n = std::min(kLanes, V - j);
    const vf ls = load_n(zs + j, n, -INFINITY) - cs, lt = load_n(zt + j, n, -INFINITY) - ct;
    const vf ps = load_n(es + j, n, 0.0f) * is, pt = load_n(et + j, n, 0.0f) * it;
    const vi s_small = ls < log_eps, t_small = lt < log_eps;
    const vf lsc = select(s_small, splat(log_eps), ls), ltc = select(t_small, splat(log_eps), lt);
    const vf psc = select(s_small, splat(eps), ps), ptc = select(t_small, splat(eps), pt);
    acc_h += pt * log_pos(pt + eps);
    acc_f += ptc * (ltc - lsc);
    acc_r += psc * (lsc - ltc);
  }
  RowForward r;
  r.nll = target >= 0 ? cs - load_n(zs + target, 1, 0.0f)[0] : 0.0f;
  r.entropy = -hsum(acc_h);
  r.kl_fwd = hsum(acc_f);
  r.kl_rev = hsum(acc_r);
  return r;
}

// dz = c_ce (ps - onehot) + c_f (ps sum(a) - a) + c_r ps (h - sum(ps h)), written in T.
template <typename T>
ER_INLINE void row_backward_impl(const T* zs, const T* zt, int64_t V, int64_t target, float c_ce, float c_f, float c_r,
                                 T* dz, float* es, float* et) {
  const float log_eps = std::log(static_cast<float>(distill::kProbEps)), eps = static_cast<float>(distill::kProbEps);
  float ms, mt, ss, st;
  row_softmax(zs, zt, V, es, et, ms, mt, ss, st);
  const float cs = ms + std::log(ss), ct = mt + std::log(st), is = 1.0f / ss, it = 1.0f / st;
  // ps, a = exp(ltc) live, h = (lsc - ltc + 1) live for lanes j .. j + n; tail lanes give 0.
  auto terms = [&](int64_t j, int64_t n, vf& ps, vf& a, vf& h) __attribute__((always_inline)) {
    const vf ls = load_n(zs + j, n, -INFINITY) - cs, lt = load_n(zt + j, n, -INFINITY) - ct;
    ps = load_n(es + j, n, 0.0f) * is;
    const vf pt = load_n(et + j, n, 0.0f) * it;
    const vi live = ls >= log_eps, t_small = lt < log_eps;
    const vf ltc = select(t_small, splat(log_eps), lt), ptc = select(t_small, splat(eps), pt);
    a = select(live, ptc, vf{});
    h = select(live, ls - ltc + 1.0f, vf{});
  };
  vf acc_a = {}, acc_h = {};
  for (int64_t j = 0; j < V; j += kLanes) {
    vf ps, a, h;
    terms(j, std::min(kLanes, V - j), ps, a, h);
    acc_a += a;
    acc_h += ps * h;
  }
  const float sum_a = hsum(acc_a), sum_psh = hsum(acc_h);
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    vf ps, a, h;
    terms(j, n, ps, a, h);
    store_n(dz + j, c_ce * ps + c_f * (ps * sum_a - a) + c_r * ps * (h - sum_psh), n);
  }
  if (target >= 0) {
    const float v = load_n(dz + target, 1, 0.0f)[0] - c_ce;
    store_n(dz + target, splat(v), 1);
  }
}

// Non-template entry points, one clone per instruction set (picked at load time).
#define ER_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
ER_CLONES RowForward row_forward_f32(const float* zs, const float* zt, int64_t V, int64_t t, float* es, float* et) {
  return row_forward_impl(zs, zt, V, t, es, et);
}
ER_CLONES RowForward row_forward_bf16(const uint16_t* zs, const uint16_t* zt, int64_t V, int64_t t, float* es,
                                      float* et) {
  return row_forward_impl(zs, zt, V, t, es, et);
}
ER_CLONES void row_backward_f32(const float* zs, const float* zt, int64_t V, int64_t t, float c_ce, float c_f,
                                float c_r, float* dz, float* es, float* et) {
  row_backward_impl(zs, zt, V, t, c_ce, c_f, c_r, dz, es, et);
}
ER_CLONES void row_backward_bf16(const uint16_t* zs, const uint16_t* zt, int64_t V, int64_t t, float c_ce,
                                 float c_f, float c_r, uint16_t* dz, float* es, float* et) {
  row_backward_impl(zs, zt, V, t, c_ce, c_f, c_r, dz, es, et);
}

// ---- chunk loop and autograd function ---------------------------------------------------------

struct Plan {
  int64_t chunk = 256, rows = 0, vocab = 0;
  bool has_ce = false;
  at::Tensor ce_targets, ce_weights;  // (N) int64 / float (zeros when no CE)
  at::Tensor kl_weights, gamma_weights;  // (N) float (zeros when absent)
  at::Tensor teacher_hidden, teacher_weight;  // (N, C), (V, C)
};

at::Tensor logits(const at::Tensor& hidden, const at::Tensor& weight, int64_t r0, int64_t n) {
  return at::mm(hidden.narrow(0, r0, n), weight.t()).contiguous();  // (n, V) in the input dtype
}

const uint16_t* bf16_ptr(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); }

// Returns per-row (nll, entropy, kl_fwd, kl_rev) of one chunk, (n, 4) float.
at::Tensor forward_chunk(const at::Tensor& zs, const at::Tensor& zt, const at::Tensor& targets) {
  const int64_t n = zs.size(0), V = zs.size(1);
  at::Tensor out = at::empty({n, 4}, at::kFloat);
  float* o = out.data_ptr<float>();
  const int64_t* tg = targets.data_ptr<int64_t>();
  const bool bf16 = zs.scalar_type() == at::kBFloat16;
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(2 * V);
    for (int64_t r = begin; r < end; ++r) {
      const RowForward f =
          bf16 ? row_forward_bf16(bf16_ptr(zs) + r * V, bf16_ptr(zt) + r * V, V, tg[r], scratch.data(), scratch.data() + V)
               : row_forward_f32(zs.data_ptr<float>() + r * V, zt.data_ptr<float>() + r * V, V, tg[r], scratch.data(),
                                 scratch.data() + V);
      o[4 * r] = f.nll;
      o[4 * r + 1] = f.entropy;
      o[4 * r + 2] = f.kl_fwd;
      o[4 * r + 3] = f.kl_rev;
    }
  });
  return out;
}

at::Tensor backward_chunk(const at::Tensor& zs, const at::Tensor& zt, const at::Tensor& targets,
                          const at::Tensor& c_ce, const at::Tensor& c_f, const at::Tensor& c_r) {
  const int64_t n = zs.size(0), V = zs.size(1);
  at::Tensor dz = at::empty_like(zs);
  const int64_t* tg = targets.data_ptr<int64_t>();
  const float *a = c_ce.data_ptr<float>(), *f = c_f.data_ptr<float>(), *rv = c_r.data_ptr<float>();
  const bool bf16 = zs.scalar_type() == at::kBFloat16;
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(2 * V);
    for (int64_t r = begin; r < end; ++r) {
      if (bf16)
        row_backward_bf16(bf16_ptr(zs) + r * V, bf16_ptr(zt) + r * V, V, tg[r], a[r], f[r], rv[r],
                          reinterpret_cast<uint16_t*>(dz.data_ptr<at::BFloat16>()) + r * V, scratch.data(),
                          scratch.data() + V);
      else
        row_backward_f32(zs.data_ptr<float>() + r * V, zt.data_ptr<float>() + r * V, V, tg[r], a[r], f[r], rv[r],
                         dz.data_ptr<float>() + r * V, scratch.data(), scratch.data() + V);
    }
  });
  return dz;
}

void save_plan(torch::autograd::AutogradContext* ctx, const Plan& p) {
  auto& d = ctx->saved_data;
  d["chunk"] = p.chunk;
  d["rows"] = p.rows;
  d["ce_targets"] = p.ce_targets;
  d["ce_weights"] = p.ce_weights;
  d["kl_weights"] = p.kl_weights;
  d["teacher_hidden"] = p.teacher_hidden;
  d["teacher_weight"] = p.teacher_weight;
}

Plan load_plan(torch::autograd::AutogradContext* ctx) {
  auto& d = ctx->saved_data;
  Plan p;
  p.chunk = d["chunk"].toInt();
  p.rows = d["rows"].toInt();
  p.ce_targets = d["ce_targets"].toTensor();
  p.ce_weights = d["ce_weights"].toTensor();
  p.kl_weights = d["kl_weights"].toTensor();
  p.teacher_hidden = d["teacher_hidden"].toTensor();
  p.teacher_weight = d["teacher_weight"].toTensor();
  return p;
}

class FastLogitFunction : public torch::autograd::Function<FastLogitFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden,
                                                const at::Tensor& weight, const Plan& p) {
    double ce = 0, fwd = 0, rev = 0, stat = 0;
    const float* wce = p.ce_weights.data_ptr<float>();
    const float* wkl = p.kl_weights.data_ptr<float>();
    const float* wg = p.gamma_weights.data_ptr<float>();
    for (int64_t r0 = 0; r0 < p.rows; r0 += p.chunk) {
      const int64_t n = std::min(p.chunk, p.rows - r0);
      const at::Tensor zs = logits(hidden, weight, r0, n), zt = logits(p.teacher_hidden, p.teacher_weight, r0, n);
      const at::Tensor rows = forward_chunk(zs, zt, p.ce_targets.narrow(0, r0, n));
      const float* o = rows.data_ptr<float>();
      for (int64_t r = 0; r < n; ++r) {
        ce += static_cast<double>(wce[r0 + r]) * o[4 * r];
        stat += static_cast<double>(wg[r0 + r]) * o[4 * r + 1];
        fwd += static_cast<double>(wkl[r0 + r]) * o[4 * r + 2];
        rev += static_cast<double>(wkl[r0 + r]) * o[4 * r + 3];
      }
    }
    save_plan(ctx, p);
    ctx->save_for_backward({hidden, weight});
    auto scalar = [](double v) { return at::scalar_tensor(v, at::kFloat); };
    at::Tensor s = scalar(stat);
    ctx->mark_non_differentiable({s});
    return {scalar(ce), scalar(fwd), scalar(rev), s};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const Plan p = load_plan(ctx);
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& hidden = saved[0];
    const at::Tensor& weight = saved[1];
    auto value = [](const at::Tensor& g) { return g.defined() ? g.item<double>() : 0.0; };
    const double g_ce = value(grads[0]), g_fwd = value(grads[1]), g_rev = value(grads[2]);
    const at::Tensor c_ce = (p.ce_weights * g_ce).contiguous();
    const at::Tensor c_f = (p.kl_weights * g_fwd).contiguous();
    const at::Tensor c_r = (p.kl_weights * g_rev).contiguous();
    at::Tensor grad_hidden = at::empty_like(hidden);
    const bool exact = weight.scalar_type() == at::kFloat;
    at::Tensor grad_weight = at::zeros(weight.sizes(), weight.options().dtype(at::kFloat));
    at::Tensor product = exact ? at::Tensor() : at::empty(weight.sizes(), weight.options());
    for (int64_t r0 = 0; r0 < p.rows; r0 += p.chunk) {
      const int64_t n = std::min(p.chunk, p.rows - r0);
      const at::Tensor zs = logits(hidden, weight, r0, n), zt = logits(p.teacher_hidden, p.teacher_weight, r0, n);
      const at::Tensor dz = backward_chunk(zs, zt, p.ce_targets.narrow(0, r0, n), c_ce.narrow(0, r0, n),
                                           c_f.narrow(0, r0, n), c_r.narrow(0, r0, n));
      at::Tensor grad_rows = grad_hidden.narrow(0, r0, n);
      at::mm_out(grad_rows, dz, weight);
      const at::Tensor rows = hidden.narrow(0, r0, n);
      if (exact) {
        grad_weight.addmm_(dz.t(), rows);
      } else {
        at::mm_out(product, dz.t(), rows);
        grad_weight.add_(product);
      }
    }
    return {grad_hidden, grad_weight.to(weight.scalar_type()), at::Tensor()};
  }
};

}  // namespace

bool fast_logit_losses_supported(const LogitsSource& student, const LogitsSource& teacher,
                                 const FusedLogitRequest& request) {
  if (student.has_logits() || !student.hidden.defined() || !student.weight.defined()) return false;
  if (!student.hidden.device().is_cpu()) return false;
  const auto dt = student.hidden.scalar_type();
  if (dt != at::kFloat && dt != at::kBFloat16) return false;
  if (student.weight.scalar_type() != dt) return false;
  if (request.terms.size() != 1) return false;
  const auto& t = request.terms[0];
  if (std::max(t.temperature, distill::kMinTemperature) != 1.0) return false;
  if (t.gamma_stat == FusedGammaStat::target_prob) return false;
  return teacher.defined() && !teacher.has_logits() && teacher.hidden.scalar_type() == dt &&
         teacher.weight.scalar_type() == dt;
}

FusedLogitResult fast_fused_logit_losses(const LogitsSource& student, const LogitsSource& teacher,
                                         const FusedLogitRequest& request) {
  TORCH_CHECK(fast_logit_losses_supported(student, teacher, request),
              "fast_fused_logit_losses: unsupported request");
  const int64_t B = student.batch(), T = student.tokens(), V = student.vocab(), C = student.hidden.size(2);
  Plan p;
  p.rows = B * T;
  p.vocab = V;
  p.chunk = request.chunk_size > 0 ? request.chunk_size : p.rows;
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  p.has_ce = request.ce_targets.defined();
  p.ce_targets = p.has_ce ? request.ce_targets.reshape({p.rows}).to(at::kLong).contiguous()
                          : at::full({p.rows}, -1, at::kLong);
  TORCH_CHECK(p.ce_targets.max().item<int64_t>() < V, "distill: a label id is >= the vocabulary size ", V);
  p.ce_targets = p.ce_targets.clamp_min(-1);
  p.ce_weights = p.has_ce ? request.ce_weights.reshape({p.rows}).to(f32).contiguous() : at::zeros({p.rows}, f32);
  const auto& term = request.terms[0];
  p.kl_weights = term.weights.reshape({p.rows}).to(f32).contiguous();
  p.gamma_weights = term.gamma_stat == FusedGammaStat::entropy ? term.gamma_weights.reshape({p.rows}).to(f32).contiguous()
                                                               : at::zeros({p.rows}, f32);
  p.teacher_hidden = teacher.hidden.detach().reshape({p.rows, C}).contiguous();
  p.teacher_weight = teacher.weight.detach().contiguous();
  const auto outs = FastLogitFunction::apply(student.hidden.reshape({p.rows, C}).contiguous(), student.weight, p);
  FusedLogitResult r;
  r.ce = outs[0];
  r.forward = {term.forward ? outs[1] : at::zeros({}, f32)};
  r.reverse = {term.reverse ? outs[2] : at::zeros({}, f32)};
  r.gamma_stat = {term.gamma_stat == FusedGammaStat::entropy ? outs[3] : at::zeros({}, f32)};
  return r;
}

}  // namespace edgerazor::bench
