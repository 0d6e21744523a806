#!/usr/bin/env python3
"""The PyTorch-eager baseline of `edgerazor-bench step`: one QAD step written plainly.

    .venv/bin/python bench/py_eager_step.py step --vocab 32000 --dim 512 --layers 8 --heads 8 \
        --kv-heads 8 --ffn 1536 --seq 256 --batch 4 --steps 6 --dtype auto|bf16|fp32 [--threads N] \
        [--device cpu|cuda] [--compile] [--peer eager|torchao] [--model DIR] [--kv8] \
        [--w-block 256] [--a-block 256] [--kv-block 128]

What a user would otherwise write: a Hugging-Face-like Llama module, QLinear/QEmbedding with a
ternary STE quantizer `w + (q(w) - w).detach()` (absmean, block 256, factor 2) and A8 on every
Linear input (absmax int8, block 256, same STE), the teacher under torch.no_grad(), full (B, T, V)
logits for both models, CE + F.kl_div-style EAKLD (T=1, k=16, fp32 upcast) + MSE on the 3 LAFD
layers (least cosine-similar consecutive teacher hidden states), clip_grad_norm_(1.0), AdamW.
Same flags and the same final JSON line as the C++ bench (tokens_per_s, peak_rss_mb, step_ms, mfu,
matmul_peak_gflops, ...). In bf16 both models (and so gradients and AdamW states) are bf16
(`model.to(torch.bfloat16)`), like the C++ bench. Runs on the project's pinned PyPI torch
(.venv, scripts/setup.sh) or any PyTorch 2.x. --device cuda: models and batch on the GPU, the
device synchronized at every phase boundary, peak_gpu_mb = torch.cuda.max_memory_allocated over the
timed steps. --compile: teacher, student and the loss under torch.compile (default mode; the first
step, which compiles, is the warm-up the median leaves out).

--model DIR takes the shapes from a Hugging Face config.json (head_dim, GQA, tied embeddings,
Qwen3's q/k RMSNorm, rope_theta, rms_norm_eps), as `edgerazor-bench step --model` does.
--kv8 fake-quantizes K (after RoPE) and V to int8 in blocks of --kv-block, like the preset's KV8.
--peer torchao: the student a user assembles from torchao's QAT instead of hand-written
quantizers: quantize_(student, QATConfig(weight int2 per-group --w-block symmetric, activations
int8 per-token asymmetric dynamic, step="prepare")) on every nn.Linear, and int2 weight-only on
the embedding (int2 is the lowest torchao bit-width with a zero and both signs; it has no ternary),
then the same KD loss (CE + EAKLD + LAFD). Needs torchao (bench/install_peers.sh).
"""
import argparse
import json
import math
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-8


# ---- quantizers (spec quantization.md §1.2, §4.1) -------------------------------------------------

BLOCKS = {"w": 256, "a": 256, "kv": 0}  # set from the flags


def ternary_fake(w, block=None, factor=2.0, eps=1e-5):
    block = block or BLOCKS["w"]
    g = w.reshape(*w.shape[:-1], w.shape[-1] // block, block)
    s = (g.abs().mean(-1, keepdim=True) * factor).clamp(min=eps)
    return ((g / s).round().clamp(-1, 1) * s).reshape(w.shape)


def int8_fake(x, block=None, eps=1e-5):
    block = block or BLOCKS["a"]
    g = x.reshape(*x.shape[:-1], x.shape[-1] // block, block)
    s = g.abs().amax(-1, keepdim=True).clamp(min=eps) / 127
    return ((g / s).round().clamp(-127, 127) * s).reshape(x.shape)


class QLinear(nn.Linear):
    def forward(self, x):
        w = self.weight
        wq = w + (ternary_fake(w) - w).detach()
        xq = x + (int8_fake(x) - x).detach()
        return F.linear(xq, wq, self.bias)


class QEmbedding(nn.Embedding):
    def forward(self, ids):
        w = self.weight
        wq = w + (ternary_fake(w) - w).detach()
        return F.embedding(ids, wq)


# ---- a Hugging-Face-like Llama ---------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def kv8_fake(x):  # K after RoPE and V, int8 blocks along head_dim, straight-through
    return x + (int8_fake(x, BLOCKS["kv"]) - x).detach()


class Attention(nn.Module):
    def __init__(self, a, linear, kv8):
        super().__init__()
        self.h, self.hkv, self.d = a.heads, a.kv_heads, a.head_dim
        self.kv8 = kv8
        self.q_norm = RMSNorm(self.d, a.eps) if a.qk_norm else None
        self.k_norm = RMSNorm(self.d, a.eps) if a.qk_norm else None
        self.q_proj = linear(a.dim, self.h * self.d, bias=False)
        self.k_proj = linear(a.dim, self.hkv * self.d, bias=False)
        self.v_proj = linear(a.dim, self.hkv * self.d, bias=False)
        self.o_proj = linear(self.h * self.d, a.dim, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.d).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.hkv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.hkv, self.d).transpose(1, 2)
        if self.q_norm is not None:  # Qwen3: per-head RMSNorm before RoPE
            q, k = self.q_norm(q), self.k_norm(k)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.kv8:
            k, v = kv8_fake(k), kv8_fake(v)
        k, v = repeat_kv(k, self.h // self.hkv), repeat_kv(v, self.h // self.hkv)
        if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0 (what HF uses there)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # HF "eager" attention
            scores = q @ k.transpose(2, 3) / math.sqrt(self.d)
            mask = torch.full((t, t), float("-inf"), dtype=scores.dtype).triu(1)
            probs = F.softmax(scores + mask, dim=-1, dtype=torch.float32).to(q.dtype)
            out = probs @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, a, linear):
        super().__init__()
        self.gate_proj = linear(a.dim, a.ffn, bias=False)
        self.up_proj = linear(a.dim, a.ffn, bias=False)
        self.down_proj = linear(a.ffn, a.dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, a, linear, kv8):
        super().__init__()
        self.self_attn = Attention(a, linear, kv8)
        self.mlp = MLP(a, linear)
        self.input_layernorm = RMSNorm(a.dim, a.eps)
        self.post_attention_layernorm = RMSNorm(a.dim, a.eps)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaForCausalLM(nn.Module):
    def __init__(self, a, quantized, kv8=False):
        super().__init__()
        linear = QLinear if quantized else nn.Linear
        self.embed_tokens = (QEmbedding if quantized else nn.Embedding)(a.vocab, a.dim)
        self.layers = nn.ModuleList([DecoderLayer(a, linear, kv8) for _ in range(a.layers)])
        self.norm = RMSNorm(a.dim, a.eps)
        self.lm_head = linear(a.dim, a.vocab, bias=False)
        d = a.head_dim
        inv_freq = 1.0 / (a.rope_theta ** (torch.arange(0, d, 2).float() / d))
        emb = torch.cat([torch.outer(torch.arange(a.seq).float(), inv_freq)] * 2, dim=-1)
        self.register_buffer("cos", emb.cos()[None, None], persistent=False)
        self.register_buffer("sin", emb.sin()[None, None], persistent=False)
        for m in self.modules():  # HF init
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        if a.tie:
            self.lm_head.weight = self.embed_tokens.weight

    def forward(self, ids):
        """Returns (logits (B, T, V), hidden states: L+1 x (B, T, C))."""
        x = self.embed_tokens(ids)
        cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
        hidden = [x]
        for layer in self.layers:
            x = layer(x, cos, sin)
            hidden.append(x)
        x = self.norm(x)
        hidden[-1] = x  # HF: the last entry is the final-normed state
        return self.lm_head(x), hidden


# ---- losses (spec distillation.md §3-§4, §6) -------------------------------------------------------

def qad_loss(s_logits, t_logits, s_hidden, t_hidden, labels, k=16, topk=3):
    b, t, v = s_logits.shape
    s = s_logits[:, :-1].float()  # logits at t predict labels[t + 1]
    tt = t_logits[:, :-1].float()
    ce = F.cross_entropy(s.reshape(-1, v), labels[:, 1:].reshape(-1))
    log_ps = F.softmax(s, dim=-1).clamp(min=EPS).log()
    log_pt = F.softmax(tt, dim=-1).clamp(min=EPS).log()
    kl_fwd = F.kl_div(log_ps, log_pt, reduction="none", log_target=True).sum(-1).mean(-1).mean()
    kl_rev = F.kl_div(log_pt, log_ps, reduction="none", log_target=True).sum(-1).mean(-1).mean()
    p = F.softmax(tt, dim=-1)
    entropy = -(p * (p + EPS).log()).sum(-1)
    gamma = (1 - entropy.mean(-1).mean() / math.log(k)).clamp(0, 1)
    eakld = gamma * kl_rev + (1 - gamma) * kl_fwd
    # LAFD: the top-k layers whose output is least cosine-similar to their input (teacher)
    cos = [F.cosine_similarity(t_hidden[i].float(), t_hidden[i - 1].float(), dim=-1).mean().item()
           for i in range(1, len(t_hidden))]
    layers = sorted(range(1, len(t_hidden)), key=lambda i: cos[i - 1])[:topk]
    lafd = sum(F.mse_loss(s_hidden[i].float(), t_hidden[i].float()) for i in layers) / len(layers)
    return 0.1 * ce + 2.0 * eakld + 0.1 * lafd


# ---- bench ---------------------------------------------------------------------------------------------

def native_bf16():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = line.split()
                return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(dtype, device, n=2048, reps=4):
    if device.type == "cuda":
        n = 8192  # as edgerazor-bench: 2048^3 is too short for a data-centre GPU
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    c = a @ b
    best = 0.0
    for _ in range(reps):
        iters, t0 = 0, time.perf_counter()
        while True:
            torch.mm(a, b, out=c)
            iters += 1
            sync(device)
            if time.perf_counter() - t0 >= 0.3:
                break
        best = max(best, 2.0 * n ** 3 * iters / (time.perf_counter() - t0) / 1e9)
    return best


def forward_flops(a):
    d = a.head_dim
    per_token = a.layers * (a.dim * a.heads * d + 2 * a.dim * a.kv_heads * d + a.heads * d * a.dim
                            + 3 * a.dim * a.ffn) + a.vocab * a.dim
    return 2.0 * a.batch * a.seq * per_token + 4.0 * a.batch * a.layers * a.heads * a.seq * a.seq * d


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("step")
    for name, default in [("vocab", 32000), ("dim", 512), ("layers", 8), ("heads", 8), ("kv-heads", 8),
                          ("ffn", 1536), ("seq", 256), ("batch", 4), ("steps", 6), ("threads", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--compile", action="store_true", help="torch.compile the models and the loss")
    p.add_argument("--peer", choices=["eager", "torchao"], default="eager",
                   help="the student's quantizers: hand-written STE (eager) or torchao QAT")
    p.add_argument("--model", default="", help="HF folder or config.json giving the shapes")
    p.add_argument("--kv8", action="store_true", help="fake-quantize K and V (int8, blocks of --kv-block)")
    p.add_argument("--w-block", type=int, default=256)
    p.add_argument("--a-block", type=int, default=256)
    p.add_argument("--kv-block", type=int, default=128)
    a = parser.parse_args()
    a.head_dim, a.qk_norm, a.tie, a.rope_theta, a.eps = a.dim // a.heads, False, False, 10000.0, 1e-5
    if a.model:
        path = os.path.join(a.model, "config.json") if os.path.isdir(a.model) else a.model
        with open(path) as f:
            c = json.load(f)
        a.vocab, a.dim, a.layers = c["vocab_size"], c["hidden_size"], c["num_hidden_layers"]
        a.heads, a.ffn = c["num_attention_heads"], c["intermediate_size"]
        a.kv_heads = c.get("num_key_value_heads", a.heads)
        a.head_dim = c.get("head_dim") or a.dim // a.heads
        a.qk_norm = c.get("model_type") == "qwen3"
        a.tie = bool(c.get("tie_word_embeddings", False))
        a.rope_theta = float(c.get("rope_theta", 10000.0))
        a.eps = float(c.get("rms_norm_eps", 1e-6))
    BLOCKS.update(w=a.w_block, a=a.a_block, kv=a.kv_block)
    torch.set_num_threads(a.threads if a.threads > 0 else len(os.sched_getaffinity(0)))
    device = torch.device(a.device)
    has_bf16 = device.type == "cuda" or native_bf16()
    dtype_name = a.dtype if a.dtype != "auto" else ("bf16" if has_bf16 else "fp32")
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    peak = matmul_peak_gflops(dtype, device)
    load_start = os.getloadavg()

    torch.manual_seed(0)
    teacher = LlamaForCausalLM(a, quantized=False)
    student = LlamaForCausalLM(a, quantized=a.peer == "eager", kv8=a.kv8)
    student.load_state_dict(teacher.state_dict())  # QAD starts from the teacher
    teacher.to(device, dtype).eval().requires_grad_(False)
    student.to(device, dtype).train()
    if a.peer == "torchao":
        import torchao
        from torchao.quantization import quantize_
        from torchao.quantization.qat import IntxFakeQuantizeConfig, QATConfig
        weight = IntxFakeQuantizeConfig(torch.int2, group_size=a.w_block, is_symmetric=True)
        act = IntxFakeQuantizeConfig(torch.int8, "per_token", is_symmetric=False)
        quantize_(student, QATConfig(activation_config=act, weight_config=weight, step="prepare"))
        quantize_(student, QATConfig(weight_config=weight, step="prepare"),
                  filter_fn=lambda m, fqn: isinstance(m, nn.Embedding))
        if a.tie:  # quantize_ swaps modules: tie the new lm_head to the new embedding again
            student.lm_head.weight = student.embed_tokens.weight
    # fused=True is AdamW at its best on a GPU (one kernel for all parameters)
    opt = torch.optim.AdamW(student.parameters(), lr=2e-5, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01,
                            **({"fused": True} if device.type == "cuda" else {}))
    ids = torch.randint(0, a.vocab, (a.batch, a.seq)).to(device)
    labels = ids.clone()
    run_teacher, run_student, loss_fn = teacher, student, qad_loss
    if a.compile:
        run_teacher, run_student, loss_fn = torch.compile(teacher), torch.compile(student), torch.compile(qad_loss)

    flops = 4.0 * forward_flops(a)
    times, phases, loss_value = [], {}, 0.0
    for i in range(a.steps):
        ph = {}
        if i == 1 and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)  # the timed steps' peak, as edgerazor-bench
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            t_logits, t_hidden = run_teacher(ids)
        sync(device)
        t1 = time.perf_counter()
        s_logits, s_hidden = run_student(ids)
        sync(device)
        t2 = time.perf_counter()
        loss = loss_fn(s_logits, t_logits, s_hidden, t_hidden, labels)
        sync(device)
        t3 = time.perf_counter()
        loss.backward()
        loss_value = loss.item()
        del s_logits, t_logits, s_hidden, t_hidden, loss
        sync(device)
        t4 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        sync(device)
        t5 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        t6 = time.perf_counter()
        ph = {"teacher_forward": t1 - t0, "student_forward": t2 - t1, "loss_forward": t3 - t2,
              "backward": t4 - t3, "clip_grad": t5 - t4, "optimizer": t6 - t5}
        ph = {k: v * 1e3 for k, v in ph.items()}
        ms = (t6 - t0) * 1e3
        print(json.dumps({"step": i, "step_ms": ms, "loss": loss_value, "phases_ms": ph}), flush=True)
        if i > 0 or a.steps == 1:
            times.append(ms)
            for k, v in ph.items():
                phases.setdefault(k, []).append(v)
    step_ms = statistics.median(times)
    out = {
        "bench": "edgerazor-bench step",
        "impl": "pytorch %s%s (torch %s%s)" % ("torch.compile" if a.compile else "eager",
                                              " + torchao QAT" if a.peer == "torchao" else "", torch.__version__,
                                              ", torchao " + torchao.__version__ if a.peer == "torchao" else ""),
        "peer": ("torchao" if a.peer == "torchao" else "eager") + ("+compile" if a.compile else ""),
        "tokens_per_s": a.batch * a.seq / (step_ms / 1e3), "step_ms": step_ms, "step_ms_min": min(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "mfu": flops / (step_ms / 1e3) / (peak * 1e9), "matmul_peak_gflops": peak,
        "achieved_gflops": flops / (step_ms / 1e3) / 1e9, "flops_per_step": flops,
        "flop_model": "same as edgerazor-bench (4 * F_fwd, see its flop_model)",
        "dtype": dtype_name, "native_bf16": has_bf16, "threads": torch.get_num_threads(),
        "config": {"vocab": a.vocab, "dim": a.dim, "layers": a.layers, "heads": a.heads,
                   "kv_heads": a.kv_heads, "ffn": a.ffn, "seq": a.seq, "batch": a.batch, "steps": a.steps,
                   "head_dim": a.head_dim, "tied": a.tie, "qk_norm": a.qk_norm, "kv8": a.kv8},
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "model_state_mb": (4 * sum(p.numel() * p.element_size() for p in student.parameters())
                           + sum(p.numel() * p.element_size() for p in teacher.parameters())) / 2 ** 20,
        "loss": loss_value, "phases_ms": {k: statistics.median(v) for k, v in phases.items()},
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
    }
    out["peak_minus_state_mb"] = out["peak_rss_mb"] - out["model_state_mb"]
    out["device"] = str(device)
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
        out["reserved_gpu_mb"] = torch.cuda.memory_reserved(device) / 2 ** 20
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
