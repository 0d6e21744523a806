"""lm-evaluation-harness (pinned, `hf` backend, float32, CPU) on task files, for the C++ task tests.

    python lm_eval_reference.py request.json response.json

request:  {"runs": [{"model": dir, "apply_chat_template": false, "limit": null}, ...], "tasks": [task.yaml, ...],
           "tiny_qwen3": {"dir": d, "tokenizer_dir": t}, "batch_size": 8}
          tiny_qwen3 (optional): first builds a small random Qwen3 with transformers in `dir`, with
          the real Qwen3 tokenizer files from tokenizer_dir copied beside it.
response: {"runs": [{task: {"results": {...}, "samples": [{"doc_id", "filter", "arguments", "resps",
           "filtered_resps", "target", metric: value, ...}]}}]}   (one per run, in order)
"""
import json
import os
import shutil
import sys

import torch


def build_tiny_qwen3(out_dir, tokenizer_dir):
    from transformers import Qwen3Config, Qwen3ForCausalLM
    if os.path.exists(os.path.join(out_dir, "model.safetensors")):
        return
    torch.manual_seed(7)
    config = Qwen3Config(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                         rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, initializer_range=0.2,
                         bos_token_id=None, eos_token_id=151643, pad_token_id=151643)
    model = Qwen3ForCausalLM(config).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer_dir, name), os.path.join(out_dir, name))


def main(request_path, response_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    if request.get("tiny_qwen3"):
        build_tiny_qwen3(request["tiny_qwen3"]["dir"], request["tiny_qwen3"]["tokenizer_dir"])
    import lm_eval
    from lm_eval.tasks import TaskManager
    task_dirs = sorted({os.path.dirname(os.path.abspath(t)) for t in request["tasks"]})
    manager = TaskManager(include_path=task_dirs)
    names = []
    for t in request["tasks"]:
        with open(t, encoding="utf-8") as f:
            for line in f:
                if line.startswith("task:"):
                    names.append(line.split(":", 1)[1].strip())
    response = {"runs": []}
    for run in request["runs"]:
        chat = bool(run.get("apply_chat_template"))
        out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={run['model']},dtype=float32", tasks=names,
                                      device="cpu", batch_size=request.get("batch_size", 8), log_samples=True,
                                      task_manager=manager, limit=run.get("limit"), apply_chat_template=chat,
                                      fewshot_as_multiturn=chat)
        per_task = {}
        for name in names:
            samples = []
            for s in out["samples"][name]:
                keep = {k: s[k] for k in ("doc_id", "filter", "resps", "filtered_resps", "target")}
                args = s["arguments"]  # a list of argument tuples in memory; the log file's form:
                keep["arguments"] = args if isinstance(args, dict) else {
                    f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(arg)} for i, arg in enumerate(args)}
                for metric in s["metrics"]:
                    keep[metric] = s[metric]
                samples.append(keep)
            per_task[name] = {"results": out["results"][name], "samples": samples}
        response["runs"].append(per_task)
    with open(response_path, "w", encoding="utf-8") as f:
        json.dump(response, f, ensure_ascii=False, default=str)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
