#!/usr/bin/env python3
"""Writes a Hugging Face model folder with random weights for a config.json, one tensor at a time
(memory: one tensor), for benchmarks at real shapes without downloading weights.

    python bench/make_random_model.py bench/qwen3-0.6b OUT_DIR [--dtype bfloat16] [--tokenizer DIR] [--seed 0]

Tensors and names are those edgerazor and transformers use for llama / qwen2 / qwen3 (matrices
normal(0, 0.02), norms 1, biases 0); tied models have no lm_head.weight. Needs torch only.
"""
import argparse
import json
import os
import shutil
import struct

import torch


def tensor_shapes(c):
    C, L, V = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    H, Hkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    D = c.get("head_dim") or C // H
    F = c["intermediate_size"]
    qwen2, qwen3 = c["model_type"] == "qwen2", c["model_type"] == "qwen3"
    qkv_bias = qwen2 or (c.get("attention_bias", False) and not qwen2)
    o_bias = c.get("attention_bias", False) and not qwen2
    mlp_bias = c.get("mlp_bias", False)
    out = [("model.embed_tokens.weight", (V, C))]
    for l in range(L):
        p = f"model.layers.{l}."
        for name, rows, cols, bias in (("q_proj", H * D, C, qkv_bias), ("k_proj", Hkv * D, C, qkv_bias),
                                       ("v_proj", Hkv * D, C, qkv_bias), ("o_proj", C, H * D, o_bias)):
            out.append((p + "self_attn." + name + ".weight", (rows, cols)))
            if bias:
                out.append((p + "self_attn." + name + ".bias", (rows,)))
        if qwen3:
            out += [(p + "self_attn.q_norm.weight", (D,)), (p + "self_attn.k_norm.weight", (D,))]
        for name, rows, cols in (("gate_proj", F, C), ("up_proj", F, C), ("down_proj", C, F)):
            out.append((p + "mlp." + name + ".weight", (rows, cols)))
            if mlp_bias:
                out.append((p + "mlp." + name + ".bias", (rows,)))
        out += [(p + "input_layernorm.weight", (C,)), (p + "post_attention_layernorm.weight", (C,))]
    out.append(("model.norm.weight", (C,)))
    if not c.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", (V, C)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", help="config.json or a folder holding one")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--tokenizer", default="", help="folder whose tokenizer files are copied")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cfg_path = os.path.join(a.config, "config.json") if os.path.isdir(a.config) else a.config
    with open(cfg_path) as f:
        c = json.load(f)
    dtype = getattr(torch, a.dtype)
    st_dtype = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}[a.dtype]
    size = torch.tensor([], dtype=dtype).element_size()
    shapes = tensor_shapes(c)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + n * size]}
        offset += n * size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    tmp = os.path.join(a.out, "model.safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape in shapes:
            if len(shape) == 1:
                t = torch.zeros(shape, dtype=dtype) if name.endswith(".bias") else torch.ones(shape, dtype=dtype)
            else:
                t = torch.randn(shape, dtype=torch.float32).mul_(0.02).to(dtype)
            f.write(t.contiguous().view(torch.uint8).numpy().tobytes())
    os.replace(tmp, os.path.join(a.out, "model.safetensors"))
    c["torch_dtype"] = a.dtype
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    if a.tokenizer:
        for name in os.listdir(a.tokenizer):
            if name.startswith("tokenizer") or name in ("special_tokens_map.json", "vocab.json", "merges.txt"):
                shutil.copy(os.path.join(a.tokenizer, name), os.path.join(a.out, name))
    print(f"{a.out}: {len(shapes)} tensors, {offset / 2**30:.2f} GiB of {a.dtype}")


if __name__ == "__main__":
    main()
