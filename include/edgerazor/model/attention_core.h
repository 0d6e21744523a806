// softmax(q k^T * scale + mask) v as Hugging Face computes it on libtorch < 2 (scores in the input
// dtype, softmax in fp32, probabilities cast back to the input dtype), used by the transformer where
// libtorch has no fused scaled_dot_product_attention.
//
// recompute_in_backward: an autograd function that saves q, k, v and the mask only and recomputes
// the (B, H, T, S) scores in backward, with autograd's own ops in its order (bit-identical
// gradients). Without it every layer keeps its fp32 probabilities and their input-dtype copy until
// backward: 12 MiB per layer at B 4, H 8, T 256 in bf16, growing with T^2.
//
// Legend: B batch, H heads, T queries, S keys, D head dim. q (B, H, T, D); k, v (B, H, S, D);
// mask additive, broadcastable to (B, H, T, S), or undefined.
#pragma once

#include <ATen/core/Tensor.h>

namespace edgerazor::model {

at::Tensor attention_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          double scale, bool recompute_in_backward);

// Plain causal attention (T == S, no other mask) of the same maths, computed `block` queries at a
// time against only the keys they see: ~half the score FLOPs and softmax work of the full square,
// and no (B, H, T, S) tensor (a block's (B, H, block, S) scores at most). Backward recomputes each
// block's probabilities; key and value gradients sum over blocks in fp32. On CPU it runs the
// causal case 1.4-2x faster than libtorch 2's fused flash-attention kernel (bench/README.md).
at::Tensor blocked_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                                    int64_t block);

}  // namespace edgerazor::model
