"""Tiny random Llama, Qwen2 and Qwen3 models from transformers itself, with reference outputs.

    python hf_tiny_models.py OUT_DIR

For each architecture: builds the model from its transformers config class with a fixed seed,
saves it with save_pretrained (float32 safetensors) into OUT_DIR/<name>/, then runs it in float64
(eager attention) for the mean next-token NLL of a fixed id sequence and 40 greedy tokens from a
prompt (model.generate, KV cache). Writes OUT_DIR/reference.json:
  {"models": [{"name", "dir", "ids", "nll", "prompt", "greedy"}]}
"""
import json
import os
import sys

import torch
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

COMMON = dict(vocab_size=384, hidden_size=64, intermediate_size=176, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, initializer_range=0.1,
              bos_token_id=1, eos_token_id=2, pad_token_id=0, attn_implementation="eager")

ARCHITECTURES = [
    ("llama", LlamaConfig, LlamaForCausalLM, dict(rope_theta=10000.0, tie_word_embeddings=True)),
    ("llama-untied", LlamaConfig, LlamaForCausalLM, dict(rope_theta=500000.0, tie_word_embeddings=False)),
    ("qwen2", Qwen2Config, Qwen2ForCausalLM, dict(rope_theta=1000000.0, tie_word_embeddings=True)),
    ("qwen3", Qwen3Config, Qwen3ForCausalLM, dict(rope_theta=1000000.0, head_dim=32, tie_word_embeddings=True)),
]


def main(out_dir):
    generator = torch.Generator().manual_seed(1234)
    ids = torch.randint(3, COMMON["vocab_size"], (1, 96), generator=generator)
    prompt = ids[:, :8]
    models = []
    for index, (name, config_class, model_class, extra) in enumerate(ARCHITECTURES):
        torch.manual_seed(100 + index)
        config = config_class(**COMMON, **extra)
        model = model_class(config).eval()
        if name.startswith("qwen2"):  # q/k/v biases start at zero: make them matter
            with torch.no_grad():
                for layer in model.model.layers:
                    for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                        proj.bias.normal_(0.0, 0.1)
        folder = os.path.join(out_dir, name)
        model.save_pretrained(folder, safe_serialization=True)
        model = model.to(torch.float64)
        with torch.no_grad():
            logits = model(ids).logits[0]
            nll = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:]).item()
            generated = model.generate(prompt, max_new_tokens=40, do_sample=False, eos_token_id=None,
                                       pad_token_id=0, use_cache=True)
        models.append({"name": name, "dir": folder, "ids": ids[0].tolist(), "nll": nll,
                       "prompt": prompt[0].tolist(), "greedy": generated[0, prompt.shape[1]:].tolist()})
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump({"models": models}, f)


if __name__ == "__main__":
    main(sys.argv[1])
