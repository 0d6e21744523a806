"""Runs a GGUF file in llama.cpp (llama-cpp-python, CPU, 1 thread) and prints one JSON object.

    python run_llama.py MODEL.gguf decode PROMPT_IDS(csv) N   -> {"tokens": [...]}  greedy
    python run_llama.py MODEL.gguf logits IDS(csv)            -> {"logits": [[...], ...]} after each id
    python run_llama.py MODEL.gguf tokenize TEXT_FILE         -> {"tokens": [...], "text": detokenized,
                                                                  "bos": id, "eos": id}
    python run_llama.py MODEL.gguf story PROMPT N STORY_OUT   -> the story (BOS + prompt + greedy tokens up to
                                                                 N or EOS) in STORY_OUT; {"tokens", "seconds",
                                                                 "tokens_per_s"}: fastest of 3 identical runs

F32 KV cache and no flash attention (shared/spec/llama-cpp-check.md: an F16 cache flips
near-ties); the model's own weights in the file decide every other precision.
"""
import json
import sys
import time

import llama_cpp
import numpy as np

# One token per llama_decode call. llama.cpp as llama-cpp-python 0.3.36 builds it (native CPU
# kernels with weight repacking) crashes in a multi-token batch over Q4_0 tensors with rows of 64
# (stories260K); token by token it runs, and through the KV cache gives the same logits.
N_BATCH = 1


def load(path, logits_all):
    options = dict(model_path=path, n_ctx=512, n_batch=N_BATCH, n_threads=1, n_threads_batch=1, n_gpu_layers=0,
                   logits_all=logits_all, verbose=False, type_k=llama_cpp.GGML_TYPE_F32,
                   type_v=llama_cpp.GGML_TYPE_F32)
    try:
        return llama_cpp.Llama(flash_attn=False, **options)
    except TypeError:  # versions that name the option otherwise
        return llama_cpp.Llama(**options)


def ids(text):
    return [int(x) for x in text.split(",") if x]


def greedy(llm, prompt, n, stop=None):
    llm.reset()
    llm.eval(prompt)
    out = []
    while len(out) < n:
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if token == stop:
            break
        out.append(token)
        if len(out) < n:
            llm.eval([token])
    return out


def main(path, mode, *args):
    if mode == "tokenize":
        llm = load(path, False)
        with open(args[0], encoding="utf-8", newline="") as f:
            text = f.read()
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        out = {"tokens": tokens, "text": llm.detokenize(tokens).decode("utf-8", errors="replace"),
               "bos": llm.token_bos(), "eos": llm.token_eos()}
    elif mode == "decode":
        out = {"tokens": greedy(load(path, True), ids(args[0]), int(args[1]))}
    elif mode == "story":
        prompt_text, n, story_out = args[0], int(args[1]), args[2]
        llm = load(path, True)
        prompt = [llm.token_bos()] + llm.tokenize(prompt_text.encode("utf-8"), add_bos=False, special=False)
        seconds = float("inf")
        for _ in range(3):  # a few-ms decode is noisy: the fastest of 3 gives tokens/s
            start = time.perf_counter()
            tokens = greedy(llm, prompt, n, stop=llm.token_eos())
            seconds = min(seconds, time.perf_counter() - start)
        story = llm.detokenize(prompt[1:] + tokens).decode("utf-8", errors="replace")
        if story.startswith(" ") and not prompt_text.startswith(" "):
            story = story[1:]  # SentencePiece's word-start marker on the first piece, as its decoders drop it
        with open(story_out, "w", encoding="utf-8") as f:
            f.write(story + "\n")
        out = {"tokens": len(tokens), "seconds": seconds, "tokens_per_s": len(tokens) / seconds}
    elif mode == "logits":
        llm = load(path, True)
        sequence = ids(args[0])
        llm.reset()
        llm.eval(sequence)
        out = {"logits": [llm.scores[i].tolist() for i in range(len(sequence))]}
    else:
        raise SystemExit(f"unknown mode {mode}")
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
