// Experimental (bench/README.md "Proposals"): a row-fused CPU kernel for the fused chunked
// CE + KL path of distill/fused_logit_loss.h, same interface and maths, restricted to what the
// paper objective needs: student and teacher given as hidden + lm_head weight, CE, and at most one
// KL term at T = 1 (forward and/or reverse, entropy gamma statistic).
//
// distill::fused_logit_losses runs ~15 ATen element-wise passes per chunk in forward and ~25 in
// backward over (chunk, V) fp32 tensors that live in DRAM. This kernel keeps one row of student
// and teacher probabilities (2 x V floats) in the core's cache and does each row in 3 passes
// (forward) / 4 passes (backward), reads the GEMM output in its own dtype (bf16 or fp32) and writes
// the logit gradient straight in the GEMM dtype. GEMMs and the recomputation scheme are unchanged.
//
// Legend: N = B * T rows, C hidden, V vocab.
#pragma once

#include "edgerazor/distill/fused_logit_loss.h"

namespace edgerazor::bench {

// True when fast_fused_logit_losses supports the request (else use distill::fused_logit_losses):
// hidden + weight sources (bf16 or fp32, CPU), exactly one KL term at T = 1, no CAKLD statistic.
bool fast_logit_losses_supported(const distill::LogitsSource& student, const distill::LogitsSource& teacher,
                                 const distill::FusedLogitRequest& request);

// Same contract and results as distill::fused_logit_losses for supported requests.
distill::FusedLogitResult fast_fused_logit_losses(const distill::LogitsSource& student,
                                                  const distill::LogitsSource& teacher,
                                                  const distill::FusedLogitRequest& request);

}  // namespace edgerazor::bench
