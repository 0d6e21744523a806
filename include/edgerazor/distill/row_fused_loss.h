// Row-fused CE + KL on CPU with the gradient computed during the forward pass (Liger-style fused
// linear loss). DistillObjective takes this path whenever it applies; fused_logit_loss.h stays the
// general path (any number of terms, any temperature, CAKLD, GPUs) and the reference it is tested
// against.
//
// Legend: N = B * T rows, C hidden, V vocab, n rows in a chunk.
//
// Why: the general path runs ~15 ATen element-wise passes per chunk over (n, V) fp32 tensors in
// forward and ~25 in backward, and recomputes both chunks of logits in backward (6 N.V.C GEMMs per
// step). Here each row of student and teacher logits is reduced with the row in the core's cache
// (4 passes, vectorised exp/log, read in the GEMM's dtype, logit gradient written in it), and the
// gradient w.r.t. the hidden state and the lm_head weight is produced in the same forward sweep:
// 4 GEMMs, or 5 when the EAKLD gamma needs the teacher entropy of the whole micro-batch first (a
// teacher-only pre-pass). Backward only scales the stored gradients by the upstream gradient.
//
// The values are linear in the coefficients, so the caller passes a rule that maps the detached
// statistic (sum of gamma_weights * teacher entropy) to the weights of CE, forward KL and reverse
// KL; `total` = c_ce * ce + c_fwd * forward + c_rev * reverse is the one differentiable output.
// Its gradient is computed once, in forward, and handed over in backward: first order only, and
// one backward per forward (a second one, with retain_graph, raises an error).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

#include "edgerazor/distill/fused_logit_loss.h"

namespace edgerazor::distill {

struct RowFusedCoefficients {
  double ce = 0.0, forward = 0.0, reverse = 0.0;
};
// statistic -> coefficients; the statistic is 0 when the term has no entropy statistic.
using RowFusedRule = std::function<RowFusedCoefficients(double statistic)>;

struct RowFusedResult {
  at::Tensor total;                       // () differentiable w.r.t. student hidden and weight
  at::Tensor ce, forward, reverse, stat;  // () detached values (as FusedLogitResult)
};

// True when row_fused_losses supports the request: student and teacher as hidden + weight on the
// CPU in one dtype (bf16 or fp32), chunk_size > 0, exactly one KL term at T = 1 with no statistic
// or the entropy statistic, CE optional.
bool row_fused_supported(const LogitsSource& student, const LogitsSource& teacher,
                         const FusedLogitRequest& request);

RowFusedResult row_fused_losses(const LogitsSource& student, const LogitsSource& teacher,
                                const FusedLogitRequest& request, const RowFusedRule& rule);

}  // namespace edgerazor::distill
