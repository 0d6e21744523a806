"""Logits of a Hugging Face folder through transformers itself.

    python hf_logits.py MODEL_DIR IDS(csv) OUT.json   -> {"logits": [[...], ...]} (float32, one row per id)

AutoModelForCausalLM.from_pretrained in float32, eager attention: the check that a folder we
export loads in transformers unchanged and computes what our model computes from it.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main(model_dir, ids, out_path):
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    input_ids = torch.tensor([[int(x) for x in ids.split(",")]])
    with torch.no_grad():
        logits = model(input_ids).logits[0]
    with open(out_path, "w") as f:
        json.dump({"logits": logits.tolist()}, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
