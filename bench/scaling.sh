#!/usr/bin/env bash
# Scaling of one QAD step with sequence length and vocabulary: prints a Markdown table of step time
# and peak memory for `edgerazor-bench step` (and, with EAGER=1, the PyTorch-eager baseline).
#
#   bench/scaling.sh                        # seq 256 512 1024 2048 x vocab 32000 151936, batch 1
#   SEQS="256 1024" VOCABS=32000 BATCH=2 STEPS=3 EAGER=1 bench/scaling.sh --dtype fp32
#
# Extra arguments go to both programs (e.g. --dtype, --threads). Each run does STEPS steps (default
# 2: one warm-up, one measured). "peak - state" is the peak RSS minus the model state (teacher and
# student weights, gradients, two AdamW moments): what activations and the loss need.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${EDGERAZOR_BIN:-$here/build/bin}/edgerazor-bench"
py="${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}"
# The eager peer at its best: glibc keeps freed memory in the heap, the allocator policy
# edgerazor-bench gives itself (runtime::configure_allocator: mmap threshold 32 MiB, no trimming);
# on glibc's defaults eager spends most of a step in page faults here. Same threads: both default
# to the cores this process may use, and --threads N reaches both.
eager_env=(env MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=2147483647)
seqs="${SEQS:-256 512 1024 2048}"
vocabs="${VOCABS:-32000 151936}"
batch="${BATCH:-1}"
steps="${STEPS:-2}"
common=(--dim 512 --layers 8 --heads 8 --kv-heads 8 --ffn 1536 --batch "$batch" --steps "$steps")

row() {  # impl vocab seq json
  "$py" -c '
import json, sys
d = json.loads(sys.argv[4])
print("| %s | %s | %s | %s | %.0f | %.0f | %.3f | %.0f | %.0f | %.0f | %.1f |" % (sys.argv[1], sys.argv[2], sys.argv[3],
      d["dtype"], d["step_ms"], d["tokens_per_s"], d["mfu"], d["peak_rss_mb"], d["model_state_mb"],
      d["peak_minus_state_mb"], d["load_average"]["end"][0]))' "$@"
}

echo "| impl | vocab | seq | dtype | step ms | tokens/s | MFU | peak RSS MiB | state MiB | peak - state MiB | load |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for vocab in $vocabs; do
  for seq in $seqs; do
    j="$("$bin" step --json "${common[@]}" --vocab "$vocab" --seq "$seq" "$@" | tail -n 1)"
    row edgerazor "$vocab" "$seq" "$j"
    if [ "${EAGER:-0}" = 1 ]; then
      j="$("${eager_env[@]}" "$py" "$here/bench/py_eager_step.py" step "${common[@]}" --vocab "$vocab" --seq "$seq" "$@" | tail -n 1)" ||
        { echo "| eager | $vocab | $seq | | failed (out of memory?) | | | | | | |"; continue; }
      row eager "$vocab" "$seq" "$j"
    fi
  done
done
