#!/usr/bin/env python3
"""Writes the seed corpus of every fuzzer into OUT/<name>/: small valid inputs (hand-built
safetensors, GGUF, token shards, manifests) plus real files from ../shared/data that are small
enough to mutate quickly. Standard library only."""
import json
import os
import struct
import sys

out, shared, repo = sys.argv[1], sys.argv[2], sys.argv[3]


def put(name, file, data):
    os.makedirs(os.path.join(out, name), exist_ok=True)
    with open(os.path.join(out, name, file), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def copy(name, path, limit=64 << 10):
    if os.path.isfile(path) and os.path.getsize(path) <= limit:
        with open(path, "rb") as f:
            put(name, os.path.basename(path), f.read())


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


small = safetensors([("a.weight", "F32", [2, 2], struct.pack("<4f", 1, -2, 0.5, 3)),
                     ("b.bias", "BF16", [3], b"\x80\x3f\x00\x40\x00\x00")], {"format": "pt"})
put("safetensors_header", "small.safetensors", small)
put("safetensors_header", "empty.safetensors", safetensors([]))
put("safetensors_index", "index.json", json.dumps(
    {"metadata": {"total_size": 22}, "weight_map": {"a.weight": "shard.safetensors", "b.bias": "shard.safetensors"}}))


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kv, tensors, alignment=32):
    body = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, vtype, raw in kv:
        body += gguf_string(key) + struct.pack("<I", vtype) + raw
    data, infos = b"", b""
    for name, ggml_type, ne, raw in tensors:
        data += b"\0" * (-len(data) % alignment)
        infos += gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        infos += struct.pack("<IQ", ggml_type, len(data))
        data += raw
    body += infos
    body += b"\0" * (-len(body) % alignment)
    return body + data


kv = [("general.architecture", 8, gguf_string("llama")), ("general.alignment", 4, struct.pack("<I", 32)),
      ("llama.context_length", 4, struct.pack("<I", 512)),
      ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + gguf_string("<s>") + gguf_string("a"))]
q4_0 = struct.pack("<e", 0.25) + bytes(range(16))  # one Q4_0 block of 32 weights
put("gguf", "small.gguf", gguf(kv, [("t.f32", 0, [4], struct.pack("<4f", 1, 2, 3, 4)),
                                   ("t.f16", 1, [2], struct.pack("<2e", 1, -1)),
                                   ("t.q4_0", 2, [32], q4_0)]))

put("model_config", "llama.json", json.dumps({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
    "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True}))
put("model_config", "qwen3.json", json.dumps({
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16"}))
copy("model_config", os.path.join(shared, "models/stories260K-hf/config.json"))

# A tiny tokenizer.json (byte-level BPE) and the real Qwen3 one's head is too large: keep it small.
vocab = {chr(c): i for i, c in enumerate(range(ord("a"), ord("z") + 1))}
vocab.update({"Ġ": 26, "ab": 27, "Ġa": 28})
put("tokenizer_json", "tiny.json", json.dumps({
    "version": "1.0", "added_tokens": [{"id": 29, "content": "<|endoftext|>", "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": vocab, "merges": ["a b", "Ġ a"]}}))

copy("sentencepiece_model", os.path.join(shared, "models/stories260K/tok512.model"))

tc_path = os.path.join(shared, "models/qwen3-tokenizer/tokenizer_config.json")
if os.path.isfile(tc_path):
    template = json.load(open(tc_path)).get("chat_template")
    if isinstance(template, str):
        put("chat_template", "qwen3.jinja", template)
put("chat_template", "simple.jinja",
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] | trim }} [/INST]"
    "{% elif m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{% endgeneration %}{{ eos_token }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}>{% endif %}")

for cfg in ("tiny-stories260k-w1.58.yaml", "tiny-stories260k-w1.88.yaml", "qwen3-0.6b_w1.58a8kv8.yaml"):
    copy("train_yaml", os.path.join(repo, "configs", cfg))

# lm-eval task files with their documents (task_file: YAML, "@@DATA@@", JSON Lines).
task_data = "\n@@DATA@@\n" + "\n".join([
    '{"q": "Is it?", "choices": ["yes", "no"], "label": 0, "text": "Once upon a time.", "answer": "#### 42"}',
    '{"q": "Or not?", "choices": ["no", "yes"], "label": 1, "text": "Tom had a ball.", "answer": "#### 7"}',
    '{"q": "Why?", "choices": ["so", "because", "no"], "label": 2, "text": "The end.", "answer": "#### 1,000"}']) + "\n"
head = "dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: @DATA@\n    train: @DATA@\ntest_split: test\ntraining_split: train\n"
put("task_file", "mc.yaml", "task: mc\n" + head + "output_type: multiple_choice\ndoc_to_text: \"Q: {{q}}\\nA:\"\n"
    "doc_to_choice: choices\ndoc_to_target: label\nnum_fewshot: 1\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\n"
    "  - metric: acc_mutual_info\n  - metric: exact_match\n" + task_data)
put("task_file", "gen.yaml", "task: gen\n" + head + "fewshot_split: test\nnum_fewshot: 1\ndoc_to_text: \"{{q | regex_replace('\\\\?', '!')}}\"\n"
    "doc_to_target: answer\ngeneration_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: 8\nfilter_list:\n  - name: strict\n    filter:\n"
    "      - function: regex\n        regex_pattern: \"#### (\\\\-?[0-9\\\\.\\\\,]+)\"\n      - function: take_first\nmetric_list:\n"
    "  - metric: exact_match\n    ignore_case: true\n    regexes_to_ignore: [\",\"]\n" + task_data)
put("task_file", "rolling.yaml", "task: ppl\n" + head + "output_type: loglikelihood_rolling\ndoc_to_target: \"{{text}}\"\n" + task_data)
put("task_file", "choices.yaml", "task: c\n" + head + "output_type: multiple_choice\ndoc_to_text: q\n"
    "doc_to_choice: \"{{choices}}\"\ndoc_to_target: \"{{label}}\"\ndescription: \"Answer.\\n\"\n"
    "fewshot_config:\n  sampler: first_n\nnum_fewshot: 1\n" + task_data)

put("jsonl_records", "text.json", '{"text": "Once upon a time"}')
put("jsonl_records", "prompt.json", '{"prompt": "Hi", "response": "Hello there"}')
put("jsonl_records", "chat.json", '{"messages": [{"role": "system", "content": "Be brief."}, '
    '{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}')


def shard(tokens, docs, mask=None, vocab_size=512, eos=2):
    h = [0] * 256
    h[0], h[1], h[2], h[3] = 0x4B545245, 2, 2, 1 if mask else 0
    h[4], h[6], h[8], h[9], h[10] = len(tokens), len(docs) - 1, vocab_size, max(tokens), eos
    body = struct.pack("<256i", *h) + struct.pack("<%dH" % len(tokens), *tokens)
    if mask:
        body += bytes(mask)
    body += b"\0" * (-len(body) % 8)
    return body + struct.pack("<%dQ" % len(docs), *docs)


put("token_shard", "two_docs.bin", shard([1, 5, 9, 2, 1, 7, 2], [0, 4, 7]))
put("token_shard", "masked.bin", shard([1, 5, 9, 2], [0, 4], mask=[0, 0, 1, 1]))

manifest = {"format": "edgerazor-checkpoint-manifest", "version": 1,
            "files": {"config.json": {"bytes": 2, "hash": "0000000000000000"}}}
put("checkpoint_manifest", "manifest.json", json.dumps(manifest, indent=1))
