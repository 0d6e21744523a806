#!/usr/bin/env bash
# EdgeRazor end-to-end demo, with nothing downloaded: teacher -> PTQ and QAD students at
# W1.58-A8-KV8 and W1.88-A8-KV8 -> perplexity on held-out text -> GGUF -> a story from llama.cpp
# -> a Markdown table, loss curves (SVG) and the sample stories in the run folder.
#
#   scripts/demo.sh [--quick] [--fresh] [--out DIR] [--steps N] [--threads N] [--synthetic]
#
# Teacher: stories260K from ../shared/data (the folder beside the repository, or
# $EDGERAZOR_SHARED_DATA) when present; otherwise (or with --synthetic) a teacher of the same
# shape pretrained here on a template corpus this script writes (needs spm_train from the Debian
# package `sentencepiece`, and node for the random initial weights).
#
# Re-running reuses every finished step (data, evaluations, QAD runs, exports); an interrupted
# QAD run resumes from its last checkpoint. --fresh deletes the run folder first.
# Takes 2-3.5 minutes on 2 CPU cores (--quick: under a minute, for smoke tests). Training runs
# with the library's default thread count, which gives way to other load; --threads N fixes it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${EDGERAZOR_BIN_DIR:-$ROOT/build/bin}

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "demo: error: $*" >&2; exit 1; }

QUICK=0 FRESH=0 SYNTHETIC=0 OUT="" STEPS="" THREADS=""
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --fresh) FRESH=1 ;;
    --synthetic) SYNTHETIC=1 ;;
    --out) (($# >= 2)) || die "--out needs a folder"; OUT=$2; shift ;;
    --out=*) OUT=${1#*=} ;;
    --steps) (($# >= 2)) || die "--steps needs a number"; STEPS=$2; shift ;;
    --steps=*) STEPS=${1#*=} ;;
    --threads) (($# >= 2)) || die "--threads needs a number"; THREADS=$2; shift ;;
    --threads=*) THREADS=${1#*=} ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  shift
done
[[ -z $STEPS || $STEPS =~ ^[1-9][0-9]*$ ]] || die "--steps must be a positive integer, not '$STEPS'"
[[ -z $THREADS || $THREADS =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, not '$THREADS'"
THREAD_FLAGS=()  # none: the library's default, which gives way to other load on the machine
[[ -n $THREADS ]] && THREAD_FLAGS=(--threads "$THREADS")

# Sizes of the work. The QAD step count is the configs' 200 unless --steps/--quick say otherwise.
if ((QUICK)); then
  : "${STEPS:=20}"; OUT=${OUT:-runs/demo-quick}
  EVAL_TOKENS=4096 EVAL_BATCHES=4 STORY_TOKENS=64 TEACHER_STEPS=60 CORPUS_STORIES=1500
else
  : "${STEPS:=200}"; OUT=${OUT:-runs/demo}
  EVAL_TOKENS=32768 EVAL_BATCHES=16 STORY_TOKENS=200 TEACHER_STEPS=400 CORPUS_STORIES=6000
fi
LOG_INTERVAL=$(( STEPS >= 40 ? STEPS / 20 : 1 ))
PROMPT="Once upon a time"

for tool in data train eval generate export plot; do
  [[ -x $BIN/edgerazor-$tool ]] || die "$BIN/edgerazor-$tool not found: build first with scripts/setup.sh (installs the packages and builds into build/)"
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MARKER=$OUT/.edgerazor-demo
if ((FRESH)); then
  [[ $OUT != "$ROOT" && $OUT != / && $OUT != "$HOME" ]] || die "refusing to delete $OUT"
  if [[ -n $(ls -A "$OUT") && ! -f $MARKER ]]; then
    die "--fresh: $OUT is not empty and was not made by demo.sh; not deleting it"
  fi
  find "$OUT" -mindepth 1 -delete
fi

SHARED=${EDGERAZOR_SHARED_DATA:-$ROOT/../shared/data}
if ((!SYNTHETIC)) && [[ -f $SHARED/models/stories260K-hf/model.safetensors &&
                        -f $SHARED/text/tinystories-train-sample.txt && -f $SHARED/text/tinystories-valid-sample.txt ]]; then
  SOURCE=stories260K
else
  SOURCE=synthetic
fi

# A run folder belongs to one set of settings: reusing results made with others would mix them.
SETTINGS="source=$SOURCE steps=$STEPS eval_tokens=$EVAL_TOKENS eval_batches=$EVAL_BATCHES story_tokens=$STORY_TOKENS"
[[ $SOURCE == synthetic ]] && SETTINGS+=" teacher_steps=$TEACHER_STEPS stories=$CORPUS_STORIES"
if [[ -f $MARKER ]]; then
  [[ $(cat "$MARKER") == "$SETTINGS" ]] ||
    die "$OUT was made with other settings ($(cat "$MARKER")), not ($SETTINGS): add --fresh, or pick another --out"
elif [[ -n $(ls -A "$OUT") ]]; then
  die "$OUT is not empty and was not made by demo.sh: pick another --out"
fi
echo "$SETTINGS" >"$MARKER"

mkdir -p "$OUT"/{data,eval,gguf,packed,samples,logs,configs}
T0=$SECONDS
PREVIOUS_SECONDS=$(cat "$OUT/.demo-seconds" 2>/dev/null || echo 0)
STEP_T0=$SECONDS
step() { echo; echo "== [$(( SECONDS - T0 ))s] $*"; STEP_T0=$SECONDS; }
done_note() { echo "   ($(( SECONDS - STEP_T0 ))s)"; }
# Runs a command with its output in a log file; on failure shows the log's tail and stops.
logged() {
  local log=$OUT/logs/$1.log; shift
  if ! "$@" >"$log" 2>&1; then
    echo "demo: error: this step failed; the end of $log:" >&2
    tail -n 25 "$log" | tr '\r' '\n' | tail -n 25 >&2
    exit 1
  fi
}
# Like logged, and the trainer's progress lines ("step N/M | ...", "eval step N: ...") also shown,
# indented, as they come: a QAD run takes a minute or more.
logged_live() {
  local log=$OUT/logs/$1.log; shift
  set +e
  "$@" 2>&1 | tee "$log" | grep --line-buffered -E '^(step [0-9]+/|eval step )' | sed -u 's/^/   /'
  local status=("${PIPESTATUS[@]}")
  set -e
  if ((status[0] != 0)); then
    echo "demo: error: this step failed; the end of $log:" >&2
    tail -n 25 "$log" | tr '\r' '\n' | tail -n 25 >&2
    exit 1
  fi
}
# First number after "KEY": in a JSON file (top-level keys of our one-line and sorted reports).
# (sed -n 1p, not head: head closing the pipe early would fail the pipeline under pipefail)
json_num() { tr -d '\n' <"$1" | grep -o "\"$2\": *[-0-9.eE+]*" | sed -n '1s/.*: *//p'; }
# A number with DIGITS decimals, or n/a when there is none (e.g. a JSON null).
fmt() { awk -v x="$1" -v d="$2" 'BEGIN { if (x ~ /^[-+0-9.eE]+$/) printf ("%." d "f"), x; else printf "n/a" }'; }

echo "EdgeRazor demo -> $OUT"
echo "   teacher: $SOURCE; QAD steps: $STEPS; held-out tokens: $EVAL_TOKENS; threads: ${THREADS:-default (follows the load)}"

# ---------------------------------------------------------------------------------------------
# 1. Teacher and text
# ---------------------------------------------------------------------------------------------
if [[ $SOURCE == stories260K ]]; then
  TEACHER=$SHARED/models/stories260K-hf
  TRAIN_TXT=$SHARED/text/tinystories-train-sample.txt
  VALID_TXT=$SHARED/text/tinystories-valid-sample.txt
  TEACHER_NAME="stories260K (fp32)"
  # The validation sample has no story separators, only blank lines between paragraphs: split
  # there, every paragraph would become a document ending in EOS, and the trainer's held-out
  # loss would mostly measure guessing paragraph ends (teacher 2.02 instead of 1.42 nats/token).
  TRAIN_SPLIT=auto VALID_SPLIT=none   # the train sample separates stories with <|endoftext|>
  EVAL_BOS=()   # stories260K was trained with BOS before each story
else
  SYN=$OUT/synthetic
  # 256 byte pieces (llama.cpp needs SentencePiece's byte fallback) + 3 specials + ~250 pieces,
  # enough to make most template words one token (so greedy decoding picks whole words)
  SYN_VOCAB=512
  mkdir -p "$SYN"
  TRAIN_TXT=$SYN/train.txt
  VALID_TXT=$SYN/valid.txt
  TEACHER_NAME="synthetic teacher (fp32)"
  # One document per file, blank lines between stories kept as newline tokens: the teacher learns
  # them, so edgerazor-eval (which reads the text as one document) measures what it was trained on.
  TRAIN_SPLIT=none VALID_SPLIT=none
  # ... and sees BOS only once, at the start of the corpus: its evaluation windows get none either
  # (with BOS before every mid-text window it would score 3.9 instead of 1.33 perplexity).
  EVAL_BOS=(--no-bos)
  if ((!SYNTHETIC)); then
    echo "   $SHARED/models/stories260K-hf not found: pretraining a small teacher on a generated corpus"
  fi
  step "synthetic corpus: $CORPUS_STORIES template stories"
  # Template stories, one per paragraph, from a seeded awk generator.
  write_corpus() {  # SEED COUNT FILE
    awk -v seed="$1" -v n="$2" 'BEGIN {
      srand(seed)
      split("Lily Tom Mia Ben Anna Max Sue Sam Zoe Leo", names, " ")
      split("cat dog bird fish bunny frog duck bear", animals, " ")
      split("ball kite box hat cup book drum boat", things, " ")
      split("red blue green big small shiny soft yellow", adjs, " ")
      split("park garden house forest beach school", places, " ")
      split("happy sad sleepy proud scared excited", feels, " ")
      split("run jump play sing read swim", verbs, " ")
      for (i = 0; i < n; i++) {
        a = names[int(rand() * 10) + 1]; b = names[int(rand() * 10) + 1]
        an = animals[int(rand() * 8) + 1]; th = things[int(rand() * 8) + 1]
        ad = adjs[int(rand() * 8) + 1]; pl = places[int(rand() * 6) + 1]
        fe = feels[int(rand() * 6) + 1]; ve = verbs[int(rand() * 6) + 1]
        t = int(rand() * 3)
        if (t == 0)
          s = "Once upon a time, there was a " ad " " an " named " a ". " a " liked to " ve " in the " pl ". One day, " a " found a " th ". " a " was very " fe ". " a " and " b " played with the " th " all day."
        else if (t == 1)
          s = "Once upon a time, " a " went to the " pl " with " b ". They saw a " ad " " th ". " b " said, \"Can we " ve " with it?\" " a " said, \"Yes!\" They were " fe " and had fun."
        else
          s = "Once upon a time, a little " an " lived in the " pl ". The " an " had a " ad " " th ". Every day, the " an " liked to " ve ". One day, " a " came to the " pl ". " a " and the " an " became friends."
        print s; print ""
      }
    }' >"$3.tmp" && mv "$3.tmp" "$3"
  }
  [[ -s $TRAIN_TXT ]] || write_corpus 11 "$CORPUS_STORIES" "$TRAIN_TXT"
  [[ -s $VALID_TXT ]] || write_corpus 23 $(( CORPUS_STORIES / 10 + 50 )) "$VALID_TXT"
  done_note

  step "tokenizer: SentencePiece BPE (spm_train) on the corpus"
  if [[ ! -s $SYN/tokenizer/tokenizer.model ]]; then
    command -v spm_train >/dev/null 2>&1 ||
      die "spm_train is needed to make a tokenizer for the synthetic teacher: install the Debian package 'sentencepiece' (apt-get install sentencepiece), or put stories260K in $SHARED"
    mkdir -p "$SYN/tokenizer"
    logged spm_train spm_train --input="$TRAIN_TXT" --model_prefix="$SYN/tokenizer/spm" --vocab_size=$SYN_VOCAB \
      --byte_fallback=true --model_type=bpe --normalization_rule_name=identity --remove_extra_whitespaces=false --character_coverage=1.0 --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=1
    mv "$SYN/tokenizer/spm.model" "$SYN/tokenizer/tokenizer.model"
  fi
  done_note

  step "teacher: random initial weights (stories260K's shape, vocabulary $SYN_VOCAB, context 256)"
  INIT=$SYN/teacher-init
  if [[ ! -s $INIT/model.safetensors ]]; then
    command -v node >/dev/null 2>&1 ||
      die "node is needed to write the synthetic teacher's initial weights (scripts/setup.sh installs it)"
    mkdir -p "$INIT"
    cp "$SYN/tokenizer/tokenizer.model" "$INIT/"
    sed "s/VOCAB/$SYN_VOCAB/" >"$INIT/config.json" <<'JSON'
{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
  "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 8,
  "vocab_size": VOCAB, "max_position_embeddings": 256, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
  "hidden_act": "silu", "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
  "torch_dtype": "float32", "attention_bias": false, "mlp_bias": false
}
JSON
    cat >"$INIT/tokenizer_config.json" <<'JSON'
{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true,
 "add_eos_token": false, "tokenizer_class": "LlamaTokenizer", "model_max_length": 512}
JSON
    # safetensors: 8-byte header length, JSON header, fp32 data; N(0, 0.02) weights, norms 1.
    node - "$INIT/model.safetensors" "$SYN_VOCAB" <<'JS'
const fs = require("fs");
const [out, vocab] = process.argv.slice(2);
const C = 64, F = 172, L = 5, V = Number(vocab), KV = 32;
const shapes = [["model.embed_tokens.weight", [V, C]], ["model.norm.weight", [C]]];
for (let i = 0; i < L; i++) {
  const p = `model.layers.${i}.`;
  shapes.push([p + "input_layernorm.weight", [C]], [p + "post_attention_layernorm.weight", [C]],
    [p + "self_attn.q_proj.weight", [C, C]], [p + "self_attn.k_proj.weight", [KV, C]],
    [p + "self_attn.v_proj.weight", [KV, C]], [p + "self_attn.o_proj.weight", [C, C]],
    [p + "mlp.gate_proj.weight", [F, C]], [p + "mlp.up_proj.weight", [F, C]], [p + "mlp.down_proj.weight", [C, F]]);
}
let seed = 3407;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) + 0.5) / 2147483648;
const normal = () => Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand());
const header = {__metadata__: {format: "pt"}};
const parts = [];
let offset = 0;
for (const [name, shape] of shapes) {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let j = 0; j < n; j++) data[j] = name.endsWith("norm.weight") ? 1 : 0.02 * normal();
  header[name] = {dtype: "F32", shape, data_offsets: [offset, offset + 4 * n]};
  parts.push(Buffer.from(data.buffer));
  offset += 4 * n;
}
let json = JSON.stringify(header);
json += " ".repeat((8 - (json.length % 8)) % 8);
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(json.length));
fs.writeFileSync(out + ".tmp", Buffer.concat([len, Buffer.from(json), ...parts]));
fs.renameSync(out + ".tmp", out);
JS
  fi
  done_note
fi

step "data: text -> token shards (edgerazor-data encode)"
TOKENIZER_DIR=$([[ $SOURCE == stories260K ]] && echo "$TEACHER" || echo "$SYN/teacher-init")
for split in train valid; do
  txt=$TRAIN_TXT mode=$TRAIN_SPLIT
  [[ $split == valid ]] && txt=$VALID_TXT mode=$VALID_SPLIT
  if [[ ! -s $OUT/data/$split.bin ]]; then
    logged "encode-$split" "$BIN/edgerazor-data" encode --tokenizer "$TOKENIZER_DIR" --bos --split "$mode" \
      --in "$txt" --out "$OUT/data/$split.bin"
    tail -n 1 "$OUT/logs/encode-$split.log" | sed 's/^/   /'
  fi
done
done_note

if [[ $SOURCE == synthetic ]]; then
  step "teacher: pretraining $TEACHER_STEPS steps with plain cross-entropy (edgerazor-train, no distillation section)"
  TEACHER_RUN=$OUT/runs/teacher
  TEACHER=$TEACHER_RUN/checkpoints/step_$TEACHER_STEPS
  cat >"$OUT/configs/teacher.yaml" <<YAML
# Written by scripts/demo.sh: pretrain the synthetic teacher (no distillation section = plain CE).
run: {name: teacher, output_dir: "$OUT/runs", seed: 3407}
model: {student: "$SYN/teacher-init"}
data:
  sources: [{name: synthetic, paths: ["$OUT/data/train.bin"], weight: 1.0}]
  eval_sources: [{name: valid, paths: ["$OUT/data/valid.bin"]}]
  seq_len: 256                  # = max_position_embeddings: edgerazor-eval's windows are as long
  packing: pack
train:
  lr: 3.0e-3
  lr_scheduler: cosine
  warmup_steps: 20
  max_steps: $TEACHER_STEPS
  micro_batch_size: 8
  precision: fp32
  log_interval: 10
  eval_batches: 8
  keep_last: 1
YAML
  if [[ ! -f $TEACHER/DONE ]]; then
    resume=()
    compgen -G "$TEACHER_RUN/checkpoints/step_*/DONE" >/dev/null && resume=(--resume)
    logged_live teacher-pretrain "$BIN/edgerazor-train" "$OUT/configs/teacher.yaml" "${THREAD_FLAGS[@]}" "${resume[@]}"
  fi
  [[ -f $TEACHER/DONE ]] || die "teacher pretraining finished without $TEACHER/DONE (see $OUT/logs/teacher-pretrain.log)"
  grep '"type":"eval"' "$TEACHER_RUN/metrics.jsonl" | tail -n 1 | sed 's/^/   last eval: /'
  done_note
fi

# ---------------------------------------------------------------------------------------------
# 2. Evaluate the teacher, PTQ and QAD
# ---------------------------------------------------------------------------------------------
QUANTS=(w1.58 w1.88)
# edgerazor-eval perplexity of MODEL_DIR on the validation text; cached as eval/NAME.json.
evaluate() {  # NAME MODEL_DIR [--quant YAML]
  local name=$1; shift
  [[ -s $OUT/eval/$name.json ]] && return 0
  logged "eval-$name" "$BIN/edgerazor-eval" "$@" --text "$VALID_TXT" --max-tokens "$EVAL_TOKENS" "${THREAD_FLAGS[@]}" --quiet \
    "${EVAL_BOS[@]}"
  tail -n 1 "$OUT/logs/eval-$name.log" >"$OUT/eval/$name.json.tmp"
  mv "$OUT/eval/$name.json.tmp" "$OUT/eval/$name.json"
}

step "evaluate the teacher (edgerazor-eval, $EVAL_TOKENS held-out tokens)"
evaluate teacher "$TEACHER"
echo "   perplexity $(json_num "$OUT/eval/teacher.json" perplexity)"
done_note

for q in "${QUANTS[@]}"; do
  step "PTQ $q (edgerazor-eval --quant configs/tiny-stories260k-$q.yaml: same quantization section as QAD)"
  evaluate "ptq-$q" "$TEACHER" --quant "$ROOT/configs/tiny-stories260k-$q.yaml"
  echo "   perplexity $(json_num "$OUT/eval/ptq-$q.json" perplexity)"
  done_note
done

# Downstream tasks in lm-evaluation-harness's format, built from the validation text: a cloze
# (pick a story's true next sentence among sentences of other stories), next-word generation
# (exact match) and rolling perplexity (scripts/make_story_tasks.py).
TASK_DOCS=$(( QUICK ? 40 : 200 ))
if [[ ! -s $OUT/tasks/story_cloze.yaml ]]; then
  python3 "$ROOT/scripts/make_story_tasks.py" "$VALID_TXT" "$OUT/tasks" --docs "$TASK_DOCS" >/dev/null ||
    die "could not build the task files (scripts/make_story_tasks.py)"
fi
TASKS="$OUT/tasks/story_cloze.yaml,$OUT/tasks/story_next_word.yaml,$OUT/tasks/story_perplexity.yaml"

for q in "${QUANTS[@]}"; do
  run=$OUT/runs/qad-$q
  ckpt=$run/checkpoints/step_$STEPS
  step "QAD $q: $STEPS steps of distillation (edgerazor-train configs/tiny-stories260k-$q.yaml)"
  if [[ -f $ckpt/DONE ]]; then
    echo "   done before: $ckpt"
  else
    resume=()
    compgen -G "$run/checkpoints/step_*/DONE" >/dev/null && resume=(--resume)
    ((${#resume[@]})) && echo "   resuming from the last checkpoint"
    echo "   log: $OUT/logs/qad-$q.log"
    logged_live "qad-$q" "$BIN/edgerazor-train" "$ROOT/configs/tiny-stories260k-$q.yaml" "${THREAD_FLAGS[@]}" "${resume[@]}" \
      --set "run.output_dir=$OUT/runs" --set "run.name=qad-$q" \
      --set "model.teacher=$TEACHER" --set "model.student=$TEACHER" \
      --set "data.sources[0].paths=[$OUT/data/train.bin]" --set "data.eval_sources[0].paths=[$OUT/data/valid.bin]" \
      --set "train.max_steps=$STEPS" --set "train.log_interval=$LOG_INTERVAL" --set "train.save_interval=$(( STEPS / 2 ))" \
      --set "train.eval_batches=$EVAL_BATCHES" --set "train.eval_interval=$(( STEPS >= 40 ? STEPS / 8 : 5 ))" \
      --set "eval.tasks=[$OUT/tasks/story_cloze.yaml]" --set "eval.limit=$(( QUICK ? 20 : 100 ))"
    [[ -f $ckpt/DONE ]] || die "QAD $q finished without $ckpt/DONE (see $OUT/logs/qad-$q.log)"
  fi
  grep '"type":"eval"' "$run/metrics.jsonl" | tail -n 1 | sed 's/^/   last eval: /'
  evaluate "qad-$q" "$ckpt" --quant "$ckpt/quantization.yaml"
  echo "   perplexity (edgerazor-eval) $(json_num "$OUT/eval/qad-$q.json" perplexity)"
  done_note
done

# ---------------------------------------------------------------------------------------------
# 3. Export: GGUF (llama.cpp) and the packed checkpoint (exact codes + scales)
# ---------------------------------------------------------------------------------------------
step "export GGUF and packed checkpoints (edgerazor-export)"
export_model() {  # NAME FORMAT OUTFILE SOURCE [ARGS...]
  local name=$1 format=$2 out=$3; shift 3
  [[ -s $out && -s $out.report.json ]] && return 0
  logged "export-$name-$format" "$BIN/edgerazor-export" "$@" --format "$format" --out "$out"
}
export_model teacher gguf "$OUT/gguf/teacher-f16.gguf" "$TEACHER" --gguf-type f16
for q in "${QUANTS[@]}"; do
  cfg=$ROOT/configs/tiny-stories260k-$q.yaml
  export_model "ptq-$q" gguf "$OUT/gguf/ptq-$q.gguf" "$TEACHER" --config "$cfg"
  export_model "ptq-$q" packed "$OUT/packed/ptq-$q.packed.safetensors" "$TEACHER" --config "$cfg"
  export_model "qad-$q" gguf "$OUT/gguf/qad-$q.gguf" "$OUT/runs/qad-$q" --checkpoint "step_$STEPS"
  export_model "qad-$q" packed "$OUT/packed/qad-$q.packed.safetensors" "$OUT/runs/qad-$q" --checkpoint "step_$STEPS"
done
ls -l "$OUT"/gguf/*.gguf "$OUT"/packed/*.safetensors | awk '{printf "   %9d  %s\n", $5, $NF}'
done_note

# ---------------------------------------------------------------------------------------------
# 4. Generation speed and sample stories: llama.cpp on the GGUF files, edgerazor-generate on ours
# ---------------------------------------------------------------------------------------------
ROWS=(teacher ptq-w1.58 qad-w1.58 ptq-w1.88 qad-w1.88)
step "llama.cpp: a story from each GGUF (llama-cpp-python, greedy, 1 thread)"
LLAMA_PYTHON=""
if LLAMA_PYTHON=$(tests/reference/install.sh 2>"$OUT/logs/llama-install.log") && [[ -n $LLAMA_PYTHON ]]; then
  for name in "${ROWS[@]}"; do
    gguf=$OUT/gguf/$name.gguf
    [[ $name == teacher ]] && gguf=$OUT/gguf/teacher-f16.gguf
    if [[ ! -s $OUT/samples/$name.llama.json ]]; then
      logged "llama-$name" "$LLAMA_PYTHON" tests/reference/run_llama.py "$gguf" story "$PROMPT" "$STORY_TOKENS" \
        "$OUT/samples/$name.llama.txt"
      tail -n 1 "$OUT/logs/llama-$name.log" >"$OUT/samples/$name.llama.json"
    fi
    printf '   %-10s %8s tokens/s\n' "$name" "$(fmt "$(json_num "$OUT/samples/$name.llama.json" tokens_per_s)" 0)"
  done
else
  LLAMA_PYTHON=""
  echo "   NOTE: llama.cpp (PyPI llama-cpp-python) could not be installed, so the GGUF files were not run:"
  sed 's/^/     /' "$OUT/logs/llama-install.log"
  echo "   The table's llama.cpp column stays empty; the sample stories come from edgerazor-generate."
fi
done_note

step "edgerazor-generate: the same prompt with our own (fake-quant, A8/KV8) models"
for name in "${ROWS[@]}"; do
  [[ -s $OUT/samples/$name.generate.jsonl ]] && continue
  case $name in
    teacher) args=("$TEACHER") ;;
    ptq-*) args=("$TEACHER" --quant "$ROOT/configs/tiny-stories260k-${name#ptq-}.yaml") ;;
    qad-*) ck=$OUT/runs/$name/checkpoints/step_$STEPS; args=("$ck" --quant "$ck/quantization.yaml") ;;
  esac
  printf '{"prompt": "%s"}\n' "$PROMPT" >"$OUT/samples/prompt.jsonl"
  rm -f "$OUT/samples/$name.generate.jsonl.tmp"
  logged "generate-$name" "$BIN/edgerazor-generate" "${args[@]}" --prompts "$OUT/samples/prompt.jsonl" \
    --out "$OUT/samples/$name.generate.jsonl.tmp" --greedy --max-new-tokens "$STORY_TOKENS" "${THREAD_FLAGS[@]}"
  mv "$OUT/samples/$name.generate.jsonl.tmp" "$OUT/samples/$name.generate.jsonl"
done
# tokens/s from the progress line ("... 1/1 prompts, 2116.2 tok/s")
gen_speed() { tr '\r' '\n' <"$OUT/logs/generate-$1.log" | grep -o '[0-9.]* tok/s' | tail -n 1 | sed 's/ tok\/s//'; }
for name in "${ROWS[@]}"; do printf '   %-10s %8s tokens/s\n' "$name" "$(fmt "$(gen_speed "$name")" 0)"; done
done_note

step "downstream tasks (edgerazor-eval --tasks, lm-evaluation-harness task files, $TASK_DOCS documents each)"
for name in "${ROWS[@]}"; do
  [[ -s $OUT/eval/tasks-$name/results.json ]] && continue
  case $name in
    teacher) args=("$TEACHER") ;;
    ptq-*) args=("$TEACHER" --quant "$ROOT/configs/tiny-stories260k-${name#ptq-}.yaml") ;;
    qad-*) ck=$OUT/runs/$name/checkpoints/step_$STEPS; args=("$ck" --quant "$ck/quantization.yaml") ;;
  esac
  logged "tasks-$name" "$BIN/edgerazor-eval" "${args[@]}" --tasks "$TASKS" --output "$OUT/eval/tasks-$name" --log-samples \
    "${THREAD_FLAGS[@]}" --quiet
done
# A metric of one task from a results.json ("story_cloze" "acc,none").
task_metric() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][sys.argv[2]][sys.argv[3]])' "$@"; }
for name in "${ROWS[@]}"; do
  printf '   %-10s cloze acc %s, next-word exact match %s, word perplexity %s\n' "$name" \
    "$(fmt "$(task_metric "$OUT/eval/tasks-$name/results.json" story_cloze "acc,none")" 3)" \
    "$(fmt "$(task_metric "$OUT/eval/tasks-$name/results.json" story_next_word "exact_match,whole")" 3)" \
    "$(fmt "$(task_metric "$OUT/eval/tasks-$name/results.json" story_perplexity "word_perplexity,none")" 2)"
done
done_note

# ---------------------------------------------------------------------------------------------
# 5. Table, plots
# ---------------------------------------------------------------------------------------------
step "results: $OUT/results.md, loss curves $OUT/loss.svg"
# Trainer's own held-out loss (packed 256-token rows of the validation shard): step 0 = PTQ
# (and the teacher), last = QAD.
trainer_eval() {  # NAME
  local m l
  case $1 in
    teacher) m=$OUT/runs/qad-w1.58/metrics.jsonl; awk '/"type":"eval"/ {print; exit}' "$m" >"$OUT/eval/.tmp"
             l=$(json_num "$OUT/eval/.tmp" teacher_eval_loss)
             if [[ -n $l ]]; then fmt "$(awk -v l="$l" 'BEGIN { print exp(l) }')" 2; else echo n/a; fi ;;
    ptq-*) m=$OUT/runs/qad-${1#ptq-}/metrics.jsonl; awk '/"type":"eval"/ {print; exit}' "$m" >"$OUT/eval/.tmp"
           fmt "$(json_num "$OUT/eval/.tmp" eval_ppl)" 2 ;;
    qad-*) m=$OUT/runs/$1/metrics.jsonl; grep '"type":"eval"' "$m" | tail -n 1 >"$OUT/eval/.tmp"
           fmt "$(json_num "$OUT/eval/.tmp" eval_ppl)" 2 ;;
  esac
  rm -f "$OUT/eval/.tmp"
}
kib() { awk -v b="$1" 'BEGIN{printf "%.0f KiB", b / 1024}'; }
label() {
  case $1 in
    teacher) echo "$TEACHER_NAME" ;;
    ptq-w1.58) echo "PTQ W1.58-A8-KV8" ;;  qad-w1.58) echo "QAD W1.58-A8-KV8 ($STEPS steps)" ;;
    ptq-w1.88) echo "PTQ W1.88-A8-KV8" ;;  qad-w1.88) echo "QAD W1.88-A8-KV8 ($STEPS steps)" ;;
  esac
}
{
  echo "# EdgeRazor demo results"
  echo
  echo "Teacher: $TEACHER_NAME. QAD: $STEPS steps of 8 x 256 tokens, CE 0.2 + EAKLD 4.0 + LAFD 1.0."
  seq=$(json_num "$OUT/eval/teacher.json" seq_len)
  if ((${#EVAL_BOS[@]})); then windows="$seq tokens, no BOS"; else windows="BOS + $(( seq - 1 )) tokens"; fi
  echo "Held-out text: the first $EVAL_TOKENS tokens of \`$(basename "$VALID_TXT")\` (windows of $windows)."
  echo
  echo "| model | bits/weight (codes / with scales) | packed | GGUF | perplexity | trainer eval ppl | tokens/s llama.cpp | tokens/s edgerazor-generate |"
  echo "|---|---|---|---|---|---|---|---|"
  for name in "${ROWS[@]}"; do
    ppl=$(fmt "$(json_num "$OUT/eval/$name.json" perplexity)" 2)
    if [[ $name == teacher ]]; then
      bits="32 (fp32; GGUF F16)"
      packed="$(kib "$(stat -c %s "$TEACHER/model.safetensors")") (fp32 safetensors)"
      gguf=$(kib "$(stat -c %s "$OUT/gguf/teacher-f16.gguf")")
    else
      rep=$OUT/packed/$name.packed.safetensors.report.json
      bits=$(awk -v a="$(json_num "$rep" average_code_bits)" -v b="$(json_num "$rep" average_bits_with_scales)" \
        'BEGIN{printf "%.2f / %.2f", a, b}')
      packed=$(kib "$(stat -c %s "$OUT/packed/$name.packed.safetensors")")
      gguf=$(kib "$(stat -c %s "$OUT/gguf/$name.gguf")")
    fi
    llama="n/a"
    [[ -s $OUT/samples/$name.llama.json ]] &&
      llama=$(fmt "$(json_num "$OUT/samples/$name.llama.json" tokens_per_s)" 0)
    gen=$(fmt "$(gen_speed "$name")" 0)
    echo "| $(label "$name") | $bits | $packed | $gguf | $ppl | $(trainer_eval "$name") | $llama | $gen |"
  done
  echo
  echo "Downstream tasks (\`edgerazor-eval --tasks\`, lm-evaluation-harness task files built from the validation"
  echo "text by scripts/make_story_tasks.py, $TASK_DOCS documents each; the model as deployed, A8/KV8 included):"
  echo
  echo "| model | story_cloze acc (4 choices) | acc_norm | story_next_word exact match | story_perplexity word ppl | bits/byte |"
  echo "|---|---|---|---|---|---|"
  for name in "${ROWS[@]}"; do
    r=$OUT/eval/tasks-$name/results.json
    pm() { printf '%s ± %s' "$(fmt "$(task_metric "$r" "$1" "$2")" 3)" "$(fmt "$(task_metric "$r" "$1" "${2/,/_stderr,}")" 3)"; }
    echo "| $(label "$name") | $(pm story_cloze acc,none) | $(pm story_cloze acc_norm,none) | $(pm story_next_word exact_match,whole) |" \
         "$(fmt "$(task_metric "$r" story_perplexity word_perplexity,none)" 2) | $(fmt "$(task_metric "$r" story_perplexity bits_per_byte,none)" 3) |"
  done
  echo
  echo "- bits/weight: average over the quantized weights (decoder Linears at the label's width, the tied"
  echo "  embedding / lm_head INT4), from the export report; \"with scales\" counts the scales' bytes too."
  echo "- perplexity: \`edgerazor-eval\` (fake-quant weights, A8 activations, KV8 cache for PTQ/QAD)."
  echo "  trainer eval ppl: the trainer's own held-out evaluation ($EVAL_BATCHES batches of 8 x 256 tokens from the"
  echo "  start of the validation shard; bf16 autocast where the CPU has it; step 0 of a QAD run = PTQ)."
  echo "- tokens/s: greedy decoding of $STORY_TOKENS tokens after \"$PROMPT\", 1 thread; llama.cpp runs the GGUF"
  echo "  (llama-cpp-python 0.3.36, built from source), edgerazor-generate runs the LibTorch model."
  echo "- Loss curves: \`loss.svg\` (training loss), \`eval.svg\` (held-out loss), \`tasks.svg\` (story_cloze accuracy"
  echo "  during QAD, first $(( QUICK ? 20 : 100 )) documents). Stories: \`samples/\`. Task logs: \`eval/tasks-*/\`."
  echo "- Wall time: $(( SECONDS - T0 ))s for this run of demo.sh on $(nproc) cores, $(( PREVIOUS_SECONDS + SECONDS - T0 ))s over"
  echo "  all runs into this folder (a re-run reuses finished steps)."
  echo
  story=$OUT/samples/qad-w1.58.llama.txt
  src="llama.cpp, GGUF"
  if [[ ! -s $story ]]; then
    jq_free=$(sed -n 's/.*"response":"\(.*\)"}$/\1/p' "$OUT/samples/qad-w1.58.generate.jsonl" | sed 's/\\n/\n/g; s/\\"/"/g')
    printf '%s%s\n' "$PROMPT" "$jq_free" >"$OUT/samples/qad-w1.58.generate.txt"
    story=$OUT/samples/qad-w1.58.generate.txt
    src="edgerazor-generate"
  fi
  echo "Sample story from QAD W1.58-A8-KV8 ($src, greedy):"
  echo
  sed 's/^/> /' "$story"
} >"$OUT/results.md.tmp"
mv "$OUT/results.md.tmp" "$OUT/results.md"

plot_runs=()
for q in "${QUANTS[@]}"; do plot_runs+=("$OUT/runs/qad-$q/metrics.jsonl:QAD ${q^^}"); done
logged plot-loss "$BIN/edgerazor-plot" "${plot_runs[@]}" --key loss --type train \
  --title "QAD training loss (CE 0.2 + EAKLD 4 + LAFD 1)" --out "$OUT/loss.svg"
# The fp32 teacher's held-out loss on the same tokens, logged with the step-0 (PTQ) evaluation.
teacher_loss=$(grep '"teacher_eval_loss"' "$OUT/runs/qad-${QUANTS[0]}/metrics.jsonl" | head -n 1 |
  grep -o '"teacher_eval_loss": *[-0-9.eE+]*' | sed 's/.*: *//' || true)
hline=()
[[ -n $teacher_loss ]] && hline=(--hline "$teacher_loss:fp32 teacher")
logged plot-eval "$BIN/edgerazor-plot" "${plot_runs[@]}" --key eval_loss --type eval "${hline[@]}" \
  --title "held-out loss (step 0 = PTQ)" --out "$OUT/eval.svg"
logged plot-tasks "$BIN/edgerazor-plot" "${plot_runs[@]}" --key "story_cloze/acc,none" --type tasks \
  --title "story_cloze accuracy during QAD (step 0 = PTQ)" --out "$OUT/tasks.svg"
if [[ $SOURCE == synthetic ]]; then
  logged plot-teacher "$BIN/edgerazor-plot" "$OUT/runs/teacher/metrics.jsonl:teacher" --key loss --type train \
    --title "synthetic teacher pretraining (CE)" --out "$OUT/teacher-loss.svg"
fi
if command -v rsvg-convert >/dev/null 2>&1; then
  for svg in "$OUT"/*.svg; do rsvg-convert "$svg" -o "${svg%.svg}.png"; done
fi

echo
cat "$OUT/results.md"
echo
echo $(( PREVIOUS_SECONDS + SECONDS - T0 )) >"$OUT/.demo-seconds"
echo "demo: done in $(( SECONDS - T0 ))s -> $OUT (results.md, loss.svg, eval.svg, tasks.svg, gguf/, packed/, samples/, logs/)"
