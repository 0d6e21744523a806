#!/usr/bin/env python3
"""Builds three lm-evaluation-harness task files from TinyStories-style text (paragraphs split by
blank lines), for edgerazor-eval --tasks and lm_eval alike:

    python3 make_story_tasks.py TEXT OUT_DIR [--docs N]

  story_cloze        multiple_choice: two sentences of a paragraph; pick its true next sentence
                     among three sentences of other paragraphs (acc, acc_norm; 2-shot from a
                     training split of other paragraphs).
  story_next_word    generate_until: a sentence without its last word; exact_match on the word
                     (ignore_case, ignore_punctuation), with a "first-word" regex filter too.
  story_perplexity   loglikelihood_rolling: whole paragraphs (word/byte perplexity, bits_per_byte).

Deterministic (random.Random(0)); standard library only.
"""
import json
import os
import random
import re
import sys


def sentences(paragraph):
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", paragraph) if len(s.strip().split()) >= 3]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(text_file, out_dir, docs):
    with open(text_file, encoding="utf-8") as f:
        paragraphs = [p.strip() for p in f.read().split("\n\n") if p.strip()]
    rnd = random.Random(0)
    usable = [p for p in paragraphs if len(sentences(p)) >= 3]
    os.makedirs(out_dir, exist_ok=True)

    def cloze_rows(pool, count):
        rows = []
        for i, p in enumerate(pool[:count]):
            s = sentences(p)
            others = [sentences(q)[rnd.randrange(len(sentences(q)))] for q in rnd.sample(usable, 3) if q != p][:3]
            if len(others) < 3:
                continue
            choices = others[:]
            label = rnd.randrange(4)
            choices.insert(label, s[2])
            rows.append({"id": i, "context": s[0] + " " + s[1], "choices": choices, "label": label})
        return rows

    cloze_test = cloze_rows(usable[:docs], docs)
    cloze_train = cloze_rows(usable[docs:docs + 20], 20)
    write_jsonl(os.path.join(out_dir, "story_cloze_test.jsonl"), cloze_test)
    write_jsonl(os.path.join(out_dir, "story_cloze_train.jsonl"), cloze_train)

    words = []
    for p in usable[:docs]:
        s = sentences(p)[0]
        match = re.match(r"^(.*\S)\s+([A-Za-z]+)([.!?]*)$", s)
        if match:
            words.append({"prefix": match.group(1), "word": match.group(2)})
    write_jsonl(os.path.join(out_dir, "story_next_word.jsonl"), words)
    write_jsonl(os.path.join(out_dir, "story_perplexity.jsonl"), [{"text": p} for p in usable[:max(4, docs // 4)]])

    tasks = {
        "story_cloze.yaml": """task: story_cloze
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d}/story_cloze_test.jsonl
    train: {d}/story_cloze_train.jsonl
test_split: test
training_split: train
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: choices
doc_to_target: label
num_fewshot: 2
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""",
        "story_next_word.yaml": """task: story_next_word
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d}/story_next_word.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{{{prefix}}}}"
doc_to_target: "{{{{word}}}}"
target_delimiter: " "
generation_kwargs:
  until: ["\\n", "."]
  max_gen_toks: 6
  do_sample: false
filter_list:
  - name: whole
    filter:
      - function: remove_whitespace
      - function: take_first
  - name: first-word
    filter:
      - function: regex
        regex_pattern: "([A-Za-z]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: true
metadata:
  version: 1.0
""",
        "story_perplexity.yaml": """task: story_perplexity
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d}/story_perplexity.jsonl
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metadata:
  version: 1.0
""",
    }
    absolute = os.path.abspath(out_dir)
    for name, body in tasks.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.write(body.format(d=absolute))
    print(",".join(os.path.join(absolute, n) for n in tasks))


if __name__ == "__main__":
    args = sys.argv[1:]
    n = 40
    if "--docs" in args:
        i = args.index("--docs")
        n = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    main(args[0], args[1], n)
