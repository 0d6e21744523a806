"""transformers' own decoding steps, for edgerazor-generate's options.

    python hf_generate.py REQUEST.json RESPONSE.json

REQUEST: {"model_dir", "prompt": [ids], "max_new_tokens", "repetition_penalty",
          "distribution": {"temperature", "top_k", "top_p", "repetition_penalty"}}  (optional)
RESPONSE: {"greedy": [ids]  (model.generate, do_sample=False, with the repetition penalty),
           "distribution": {"ids": [...], "probs": [...]}}  (the next token's candidates after
           transformers' RepetitionPenalty, Temperature, TopK and TopP processors, most likely first)
float32, eager attention, no EOS stop.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM
from transformers.generation.logits_process import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)


def main(request_path, response_path):
    with open(request_path) as f:
        req = json.load(f)
    model = AutoModelForCausalLM.from_pretrained(req["model_dir"], torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    prompt = torch.tensor([req["prompt"]])
    out = {}
    with torch.no_grad():
        generated = model.generate(prompt, max_new_tokens=req["max_new_tokens"], do_sample=False,
                                   repetition_penalty=req.get("repetition_penalty", 1.0), eos_token_id=None,
                                   pad_token_id=0, attention_mask=torch.ones_like(prompt))
        out["greedy"] = generated[0, prompt.shape[1]:].tolist()
        if "distribution" in req:
            d = req["distribution"]
            scores = model(prompt).logits[:, -1, :].double()
            processors = LogitsProcessorList()
            if d.get("repetition_penalty", 1.0) != 1.0:
                processors.append(RepetitionPenaltyLogitsProcessor(d["repetition_penalty"]))
            processors.append(TemperatureLogitsWarper(d["temperature"]))
            if d.get("top_k", 0) > 0:
                processors.append(TopKLogitsWarper(d["top_k"]))
            if d.get("top_p", 1.0) < 1.0:
                processors.append(TopPLogitsWarper(d["top_p"]))
            probs = torch.softmax(processors(prompt, scores), dim=-1)[0]
            kept = torch.nonzero(probs > 0).flatten()
            order = kept[torch.argsort(probs[kept], descending=True, stable=True)]
            out["distribution"] = {"ids": order.tolist(), "probs": probs[order].tolist()}
    with open(response_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
