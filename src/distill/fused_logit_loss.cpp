// Fused chunked CE + KL terms with recomputation in backward (see fused_logit_loss.h).
// Legend: B batch, T tokens, C hidden, V vocab, N = B*T rows, n rows in a chunk, K terms.
//
// Gradients are analytic (checked against autograd of functional.h in the tests). With
// p = softmax(x/T), p~ = max(p, eps), q likewise, KL = T^2 sum q~ (log q~ - log p~) and the clamp
// masks m_p = [p >= eps], m_q = [q >= eps]:
//   d KL / d z_input  = -T (q~ m_p - p * sum(q~ m_p))
//   d KL / d z_target =  T q (h - sum(q h)),  h = (log q~ - log p~ + 1) m_q
// Forward KL has the student as input, reverse KL as target. CE: softmax(z) - onehot(target).
#include "edgerazor/distill/fused_logit_loss.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "edgerazor/distill/functional.h"

namespace edgerazor::distill {

// ---- LogitsSource -----------------------------------------------------------------------------

LogitsSource LogitsSource::from_logits(at::Tensor logits) {
  LogitsSource s;
  s.logits = std::move(logits);
  return s;
}

LogitsSource LogitsSource::from_hidden(at::Tensor hidden, at::Tensor weight) {
  LogitsSource s;
  s.hidden = std::move(hidden);
  s.weight = std::move(weight);
  return s;
}

int64_t LogitsSource::batch() const { return has_logits() ? logits.size(0) : hidden.size(0); }
int64_t LogitsSource::tokens() const { return has_logits() ? logits.size(1) : hidden.size(1); }
int64_t LogitsSource::vocab() const { return has_logits() ? logits.size(2) : weight.size(0); }

at::Tensor LogitsSource::materialize() const {
  if (has_logits()) return logits;
  return at::matmul(hidden, weight.t());
}

namespace {

constexpr int kForward = 1, kReverse = 2;

// Everything that is not differentiable, flattened to rows.
struct Plan {
  int64_t chunk = 0;
  int64_t rows = 0;
  int64_t vocab = 0;
  at::ScalarType dtype = at::kFloat;       // compute dtype
  bool has_ce = false;
  std::vector<double> temperatures;        // K
  std::vector<int64_t> flags;              // K, kForward | kReverse
  std::vector<int64_t> stats;              // K, FusedGammaStat
  at::Tensor ce_targets, ce_weights;       // (N) int64, (N)
  at::Tensor kl_weights;                   // (K, N)
  at::Tensor gamma_weights;                // (K, N)
  at::Tensor gamma_targets;                // (K, N) int64
  at::Tensor teacher_main, teacher_weight; // (N, V) logits or (N, C) hidden + (V, C)
  bool needs_teacher() const { return !temperatures.empty(); }
};

void save_plan(torch::autograd::AutogradContext* ctx, const Plan& p) {
  auto& d = ctx->saved_data;
  d["chunk"] = p.chunk;
  d["rows"] = p.rows;
  d["vocab"] = p.vocab;
  d["dtype"] = static_cast<int64_t>(p.dtype);
  d["has_ce"] = p.has_ce;
  d["temperatures"] = p.temperatures;
  d["flags"] = p.flags;
  d["stats"] = p.stats;
  if (p.has_ce) {
    d["ce_targets"] = p.ce_targets;
    d["ce_weights"] = p.ce_weights;
  }
  if (p.needs_teacher()) {
    d["kl_weights"] = p.kl_weights;
    d["teacher_main"] = p.teacher_main;
    if (p.teacher_weight.defined()) d["teacher_weight"] = p.teacher_weight;
  }
}

Plan load_plan(torch::autograd::AutogradContext* ctx) {
  auto& d = ctx->saved_data;
  Plan p;
  p.chunk = d["chunk"].toInt();
  p.rows = d["rows"].toInt();
  p.vocab = d["vocab"].toInt();
  p.dtype = static_cast<at::ScalarType>(d["dtype"].toInt());
  p.has_ce = d["has_ce"].toBool();
  p.temperatures = d["temperatures"].toDoubleVector();
  p.flags = d["flags"].toIntVector();
  p.stats = d["stats"].toIntVector();
  if (p.has_ce) {
    p.ce_targets = d["ce_targets"].toTensor();
    p.ce_weights = d["ce_weights"].toTensor();
  }
  if (p.needs_teacher()) {
    p.kl_weights = d["kl_weights"].toTensor();
    p.teacher_main = d["teacher_main"].toTensor();
    if (d.count("teacher_weight") != 0) p.teacher_weight = d["teacher_weight"].toTensor();
  }
  return p;
}

// Logits of rows [r0, r0 + n) in the compute dtype: (n, V).
at::Tensor chunk_logits(const at::Tensor& main, const at::Tensor& weight, int64_t r0, int64_t n,
                        at::ScalarType dtype) {
  const auto rows = main.narrow(0, r0, n);
  if (!weight.defined()) return rows.to(dtype);
  return at::matmul(rows, weight.t()).to(dtype);
}

struct Sums {
  at::Tensor ce;
  std::vector<at::Tensor> fwd, rev, stat;
};

struct Grads {  // upstream gradients of the outputs, as doubles; 0 = skip that part
  double ce = 0.0;
  std::vector<double> fwd, rev;
};

// Processes one chunk. Adds the chunk's loss values to `sums` (forward) or returns
// d(sum of weighted outputs)/d z_student (n, V) (backward, `grads` given).
at::Tensor run_chunk(const Plan& p, const at::Tensor& zs, const at::Tensor& zt, int64_t r0,
                     int64_t n, Sums* sums, const Grads* grads) {
  const double log_eps = std::log(kProbEps);
  const size_t k_terms = p.temperatures.size();
  at::Tensor dz;
  auto add_grad = [&](const at::Tensor& g) { dz = dz.defined() ? dz.add_(g) : g; };

  at::Tensor ls1, lt1;  // log_softmax at T = 1, shared by CE, gamma stats and T = 1 terms
  auto student_ls1 = [&]() -> const at::Tensor& {
    if (!ls1.defined()) ls1 = at::log_softmax(zs, -1);
    return ls1;
  };
  auto teacher_lt1 = [&]() -> const at::Tensor& {
    if (!lt1.defined()) lt1 = at::log_softmax(zt, -1);
    return lt1;
  };

  if (p.has_ce && (sums != nullptr || grads->ce != 0.0)) {
    const auto w = p.ce_weights.narrow(0, r0, n).unsqueeze(1);              // (n, 1)
    const auto target = p.ce_targets.narrow(0, r0, n).clamp_min(0).unsqueeze(1);  // (n, 1)
    TORCH_CHECK(p.ce_targets.narrow(0, r0, n).max().item<int64_t>() < p.vocab,
                "distill: a label id is >= the vocabulary size ", p.vocab);
    const auto& ls = student_ls1();
    if (sums != nullptr) {
      sums->ce.sub_((ls.gather(1, target) * w).sum());
    } else {
      const auto c = w * grads->ce;
      auto g = ls.exp().mul_(c);
      g.scatter_add_(1, target, -c);
      add_grad(g);
    }
  }

  for (size_t k = 0; k < k_terms; ++k) {
    const bool want_fwd = (p.flags[k] & kForward) && (sums != nullptr || grads->fwd[k] != 0.0);
    const bool want_rev = (p.flags[k] & kReverse) && (sums != nullptr || grads->rev[k] != 0.0);
    if (sums != nullptr && p.stats[k] != static_cast<int64_t>(FusedGammaStat::none)) {
      const auto gw = p.gamma_weights[k].narrow(0, r0, n);
      const auto& lt = teacher_lt1();
      if (p.stats[k] == static_cast<int64_t>(FusedGammaStat::entropy)) {
        const auto prob = lt.exp();
        const auto h = prob.add(kProbEps).log_().mul_(prob).sum(-1).neg_();   // entropy (n)
        sums->stat[k].add_((h * gw).sum());
      } else {
        const auto target = p.gamma_targets[k].narrow(0, r0, n).clamp_min(0).unsqueeze(1);
        sums->stat[k].add_((lt.gather(1, target).squeeze(1).exp() * gw).sum());
      }
    }
    if (!want_fwd && !want_rev) continue;

    const double t = std::max(p.temperatures[k], kMinTemperature);
    const auto w = p.kl_weights[k].narrow(0, r0, n).unsqueeze(1);            // (n, 1)
    const auto ls = t == 1.0 ? student_ls1() : at::log_softmax(zs / t, -1);
    const auto lt = t == 1.0 ? teacher_lt1() : at::log_softmax(zt / t, -1);
    const auto lsc = ls.clamp_min(log_eps);
    const auto ltc = lt.clamp_min(log_eps);
    if (sums != nullptr) {
      const auto diff = ltc - lsc;                                            // log q~ - log p~
      if (want_fwd) sums->fwd[k].add_((ltc.exp().mul_(diff).sum(1, true) * w).sum() * (t * t));
      if (want_rev) sums->rev[k].sub_((lsc.exp().mul_(diff).sum(1, true) * w).sum() * (t * t));
      continue;
    }
    const auto ps = ls.exp();                                                 // unclamped p_s
    const auto student_live = ls.ge(log_eps);                                 // m_p of the student
    if (want_fwd) {
      const auto a = ltc.exp().mul_(student_live);                            // q~_t m_s
      // (a - p_s sum a) * (-T g) written as (p_s sum a - a) * (T g), in place
      add_grad((ps * a.sum(1, true)).sub_(a).mul_(w * (t * grads->fwd[k])));
    }
    if (want_rev) {
      auto h = (lsc - ltc).add_(1.0).mul_(student_live);
      const auto mean_h = (ps * h).sum(1, true);
      add_grad(h.sub_(mean_h).mul_(ps).mul_(w * (t * grads->rev[k])));
    }
  }
  if (grads != nullptr && !dz.defined()) dz = at::zeros_like(zs);
  return dz;
}

class FusedLogitFunction : public torch::autograd::Function<FusedLogitFunction> {
 public:
  // student_main: (N, V) logits or (N, C) hidden; student_weight: (V, C) in hidden mode.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& student_main,
                                                const c10::optional<at::Tensor>& student_weight,
                                                const Plan& plan) {
    const at::Tensor weight = student_weight.has_value() ? *student_weight : at::Tensor();
    const auto scalar = at::zeros({}, student_main.options().dtype(plan.dtype));
    const size_t k_terms = plan.temperatures.size();
    Sums sums;
    sums.ce = scalar.clone();
    for (size_t k = 0; k < k_terms; ++k) {
      sums.fwd.push_back(scalar.clone());
      sums.rev.push_back(scalar.clone());
      sums.stat.push_back(scalar.clone());
    }
    for (int64_t r0 = 0; r0 < plan.rows; r0 += plan.chunk) {
      const int64_t n = std::min(plan.chunk, plan.rows - r0);
      const auto zs = chunk_logits(student_main, weight, r0, n, plan.dtype);
      const auto zt = plan.needs_teacher()
                          ? chunk_logits(plan.teacher_main, plan.teacher_weight, r0, n, plan.dtype)
                          : at::Tensor();
      run_chunk(plan, zs, zt, r0, n, &sums, nullptr);
    }
    save_plan(ctx, plan);
    ctx->save_for_backward(weight.defined() ? torch::autograd::variable_list{student_main, weight}
                                            : torch::autograd::variable_list{student_main});
    torch::autograd::variable_list out{sums.ce};
    for (size_t k = 0; k < k_terms; ++k) {
      out.push_back(sums.fwd[k]);
      out.push_back(sums.rev[k]);
      out.push_back(sums.stat[k]);
    }
    ctx->mark_non_differentiable(torch::autograd::variable_list(sums.stat.begin(), sums.stat.end()));
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const Plan plan = load_plan(ctx);
    const auto saved = ctx->get_saved_variables();
    const auto& main = saved[0];
    const at::Tensor weight = saved.size() > 1 ? saved[1] : at::Tensor();
    const size_t k_terms = plan.temperatures.size();
    Grads g;
    g.ce = grad_outputs[0].item<double>();
    for (size_t k = 0; k < k_terms; ++k) {
      g.fwd.push_back(grad_outputs[1 + 3 * k].item<double>());
      g.rev.push_back(grad_outputs[2 + 3 * k].item<double>());
    }
    const bool want_main = ctx->needs_input_grad(0);
    const bool want_weight = weight.defined() && ctx->needs_input_grad(1);
    at::Tensor grad_main = want_main ? at::empty_like(main) : at::Tensor();
    // Reduced-precision weights accumulate their gradient over chunks in fp32, rounded once.
    const bool exact_acc = weight.defined() && (weight.scalar_type() == at::kFloat ||
                                                weight.scalar_type() == at::kDouble);
    at::Tensor grad_weight, product;   // product: reused (V, C) buffer for reduced precision
    if (want_weight) {
      grad_weight = at::zeros(weight.sizes(), weight.options().dtype(exact_acc ? weight.scalar_type()
                                                                               : at::kFloat));
      if (!exact_acc) product = at::empty(weight.sizes(), weight.options());
    }
    c10::AutoGradMode no_grad(false);
    for (int64_t r0 = 0; r0 < plan.rows; r0 += plan.chunk) {
      const int64_t n = std::min(plan.chunk, plan.rows - r0);
      const auto zs = chunk_logits(main, weight, r0, n, plan.dtype);
      const auto zt = plan.needs_teacher()
                          ? chunk_logits(plan.teacher_main, plan.teacher_weight, r0, n, plan.dtype)
                          : at::Tensor();
      const auto dz = run_chunk(plan, zs, zt, r0, n, nullptr, &g);
      if (!weight.defined()) {
        if (want_main) grad_main.narrow(0, r0, n).copy_(dz);
        continue;
      }
      const auto dz_mm = dz.to(weight.scalar_type());
      if (want_main) grad_main.narrow(0, r0, n).copy_(at::matmul(dz_mm, weight));
      if (want_weight) {
        const auto rows = main.narrow(0, r0, n);
        if (exact_acc) {
          grad_weight.addmm_(dz_mm.t(), rows);
        } else {
          at::mm_out(product, dz_mm.t(), rows);
          grad_weight.add_(product);
        }
      }
    }
    if (grad_weight.defined()) grad_weight = grad_weight.to(weight.scalar_type());
    return {grad_main, grad_weight, at::Tensor()};
  }
};

at::Tensor flat(const at::Tensor& t, int64_t rows) { return t.reshape({rows}); }

}  // namespace

FusedLogitResult fused_logit_losses(const LogitsSource& student, const LogitsSource& teacher,
                                    const FusedLogitRequest& request) {
  TORCH_CHECK(student.defined(), "distill: student logits (or hidden + lm_head weight) missing");
  const int64_t batch = student.batch(), tokens = student.tokens(), vocab = student.vocab();
  const int64_t rows = batch * tokens;
  const auto& student_main = student.has_logits() ? student.logits : student.hidden;

  Plan p;
  p.rows = rows;
  p.vocab = vocab;
  p.chunk = request.chunk_size > 0 ? request.chunk_size : std::max<int64_t>(rows, 1);
  p.dtype = student_main.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto wopts = student_main.options().dtype(p.dtype);
  if (!student.has_logits()) {
    TORCH_CHECK(student.hidden.dim() == 3 && student.weight.dim() == 2 &&
                    student.hidden.size(2) == student.weight.size(1),
                "distill: student hidden (B, T, C) ", student.hidden.sizes(),
                " does not match lm_head weight (V, C) ", student.weight.sizes());
  } else {
    TORCH_CHECK(student.logits.dim() == 3, "distill: student logits must be (B, T, V), got ",
                student.logits.sizes());
  }

  if (request.ce_targets.defined()) {
    p.has_ce = true;
    p.ce_targets = flat(request.ce_targets, rows).to(at::kLong);
    p.ce_weights = flat(request.ce_weights, rows).to(wopts);
  }
  const size_t k_terms = request.terms.size();
  if (k_terms > 0) {
    TORCH_CHECK(teacher.defined(), "distill: KL terms need teacher logits (or hidden + weight)");
    TORCH_CHECK(teacher.batch() == batch && teacher.tokens() == tokens && teacher.vocab() == vocab,
                "distill: teacher (B, T, V) = (", teacher.batch(), ", ", teacher.tokens(), ", ",
                teacher.vocab(), ") differs from student (", batch, ", ", tokens, ", ", vocab, ")");
    if (teacher.has_logits()) {
      p.teacher_main = teacher.logits.detach().reshape({rows, vocab});
    } else {
      TORCH_CHECK(teacher.hidden.size(2) == teacher.weight.size(1), "distill: teacher hidden ",
                  teacher.hidden.sizes(), " does not match lm_head weight ", teacher.weight.sizes());
      p.teacher_main = teacher.hidden.detach().reshape({rows, teacher.hidden.size(2)});
      p.teacher_weight = teacher.weight.detach();
    }
    std::vector<at::Tensor> klw, gw, gt;
    const auto zeros = at::zeros({rows}, wopts);
    const auto no_targets = at::zeros({rows}, wopts.dtype(at::kLong));
    for (const auto& term : request.terms) {
      p.temperatures.push_back(term.temperature);
      p.flags.push_back((term.forward ? kForward : 0) | (term.reverse ? kReverse : 0));
      p.stats.push_back(static_cast<int64_t>(term.gamma_stat));
      klw.push_back(term.weights.defined() ? flat(term.weights, rows).to(wopts) : zeros);
      gw.push_back(term.gamma_weights.defined() ? flat(term.gamma_weights, rows).to(wopts) : zeros);
      gt.push_back(term.gamma_targets.defined() ? flat(term.gamma_targets, rows).to(at::kLong)
                                                : no_targets);
      TORCH_CHECK(!(term.forward || term.reverse) || term.weights.defined(),
                  "distill: a KL term needs its reduction weights");
    }
    p.kl_weights = at::stack(klw);
    p.gamma_weights = at::stack(gw);
    p.gamma_targets = at::stack(gt);
  }

  const auto main_rows = student.has_logits() ? student_main.reshape({rows, vocab})
                                              : student_main.reshape({rows, student_main.size(2)});
  const c10::optional<at::Tensor> weight =
      student.has_logits() ? c10::optional<at::Tensor>() : c10::optional<at::Tensor>(student.weight);
  const auto out = FusedLogitFunction::apply(main_rows, weight, p);

  FusedLogitResult r;
  r.ce = out[0];
  for (size_t k = 0; k < k_terms; ++k) {
    r.forward.push_back(out[1 + 3 * k]);
    r.reverse.push_back(out[2 + 3 * k]);
    r.gamma_stat.push_back(out[3 + 3 * k]);
  }
  return r;
}

}  // namespace edgerazor::distill
