"""Reference outputs from Hugging Face's Python libraries, for the C++ text tests.

    python hf_reference.py request.json response.json

request:  {"tokenizer_dir": dir, "encode": [text | {"file": path}], "decode": [[id, ...]],
           "render": [{"template": str, "context": {...}}],
           "chat": [{"messages": [...], "add_generation_prompt": bool}]}   (chat: with tokenizer_dir)
response: {"encode": [[id, ...]], "decode": [text], "render": [text | {"error": message}],
           "chat": [text]}   (chat: tokenizer.apply_chat_template(messages, tokenize=False, ...))

Tokenizers go through transformers' AutoTokenizer on the folder (tokenizer.json +
tokenizer_config.json), templates through the Jinja environment apply_chat_template compiles
them in (sandboxed, trim_blocks, lstrip_blocks, loop controls, raise_exception, tojson...).
"""
import json
import sys

from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import _compile_jinja_template


def main(request_path, response_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    response = {}
    if request.get("chat"):
        tokenizer = AutoTokenizer.from_pretrained(request["tokenizer_dir"])
        response["chat"] = [tokenizer.apply_chat_template(case["messages"], tokenize=False,
                                                          add_generation_prompt=case.get("add_generation_prompt", False))
                            for case in request["chat"]]
    if request.get("chat_ids"):  # the token ids of each conversation, as SFT trainers take them
        tokenizer = AutoTokenizer.from_pretrained(request["tokenizer_dir"])
        response["chat_ids"] = []
        for case in request["chat_ids"]:
            ids = tokenizer.apply_chat_template(case["messages"], tokenize=True, add_generation_prompt=False)
            if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
                ids = ids["input_ids"]
            response["chat_ids"].append(list(ids))
    if request.get("encode") or request.get("decode"):
        tokenizer = AutoTokenizer.from_pretrained(request["tokenizer_dir"])
        encoded = []
        for item in request.get("encode", []):
            if isinstance(item, dict):
                with open(item["file"], encoding="utf-8", newline="") as f:
                    item = f.read()
            encoded.append(tokenizer(item, add_special_tokens=False)["input_ids"])
        response["encode"] = encoded
        response["decode"] = [tokenizer.decode(ids, skip_special_tokens=False) for ids in request.get("decode", [])]
    if request.get("render"):
        rendered = []
        for case in request["render"]:
            try:
                rendered.append(_compile_jinja_template(case["template"]).render(**case["context"]))
            except Exception as error:  # the C++ side must raise where this raises
                rendered.append({"error": f"{type(error).__name__}: {error}"})
        response["render"] = rendered
    with open(response_path, "w", encoding="utf-8") as f:
        json.dump(response, f, ensure_ascii=False)


if __name__ == "__main__":
    main(*sys.argv[1:3])
