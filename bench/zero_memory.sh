#!/usr/bin/env bash
# Peak resident set per rank of edgerazor-train for each ZeRO stage (distributed.sharding), next
# to the memory model the trainer prints at start-up: one short training run per (stage, ranks).
#
#   bench/zero_memory.sh MODEL_DIR TOKENS.bin [OUT_PREFIX]
#
# MODEL_DIR: any HF folder the trainer reads (bench/make_random_model.py bench/qwen3-0.6b DIR
# --tokenizer ../shared/data/models/qwen3-tokenizer writes the Qwen3-0.6B shape); TOKENS.bin:
# edgerazor-data shards made with that tokenizer. The student and the teacher are both MODEL_DIR.
# Environment: STAGES (default "none optimizer gradients parameters"), RANKS (default "1 2"),
# SEQ (512), BATCH (1), STEPS (2), THREADS (per rank; default cores / ranks), CONFIG (default
# configs/qwen3-0.6b_w1.58a8kv8.yaml), LIMIT_MB (22528: a run whose process tree goes above it is
# killed and reported as not fitting, through bench/run_limited.py), SET (more --set overrides).
# Writes OUT_PREFIX.md (table) and OUT_PREFIX.jsonl (one record per run: the trainer's "memory"
# metrics record plus stage, ranks and the tree's peak).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:?usage: bench/zero_memory.sh MODEL_DIR TOKENS.bin [OUT_PREFIX]}"
tokens="${2:?usage: bench/zero_memory.sh MODEL_DIR TOKENS.bin [OUT_PREFIX]}"
out="${3:-zero_memory}"
stages="${STAGES:-none optimizer gradients parameters}"
ranks_list="${RANKS:-1 2}"
config="${CONFIG:-$here/configs/qwen3-0.6b_w1.58a8kv8.yaml}"
train="$here/build/bin/edgerazor-train"
python="$here/.venv/bin/python"
[ -x "$python" ] || python=python3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: > "$out.jsonl"
{
  echo "| stage | ranks | predicted MiB/rank | measured peak MiB/rank (mean) | model error | tree peak MiB | tokens/s |"
  echo "|---|---|---|---|---|---|---|"
} > "$out.md"
cores="$(nproc)"
for ranks in $ranks_list; do
  for stage in $stages; do
    name="${stage}_${ranks}"
    threads="${THREADS:-$(( cores / ranks > 0 ? cores / ranks : 1 ))}"
    # shellcheck disable=SC2086
    set +e
    "$python" "$here/bench/run_limited.py" "${LIMIT_MB:-22528}" "$work/$name.limit.json" -- \
      "$train" "$config" --nproc-per-node "$ranks" --threads "$threads" \
      --set "model.student=$model" --set "model.teacher=$model" --set "data.sources[0].paths=[$tokens]" \
      --set "data.seq_len=${SEQ:-512}" --set "train.micro_batch_size=${BATCH:-1}" \
      --set train.gradient_accumulation_steps=1 --set "train.max_steps=${STEPS:-2}" --set train.epochs=0 \
      --set train.warmup_ratio=0 --set train.device=cpu --set train.save_interval=0 \
      --set train.keep_last=1 --set "run.output_dir=$work" --set "run.name=$name" \
      --set "distributed.sharding=$stage" ${SET:-} > "$work/$name.log" 2>&1
    code=$?
    set -e
    tree_peak="$("$python" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["tree_peak_rss_mb"]))' "$work/$name.limit.json")"
    if [ "$code" -ne 0 ]; then
      reason="exit $code"
      grep -q '"killed_over_limit": true' "$work/$name.limit.json" && reason="does not fit: killed above ${LIMIT_MB:-22528} MiB"
      # The memory model's total, printed before the models were loaded.
      predicted="$(sed -n 's/.*memory model per rank.* total \([0-9.]*\) GiB.*/\1/p' "$work/$name.log" | head -n 1)"
      [ -n "$predicted" ] && predicted="$(awk -v g="$predicted" 'BEGIN { printf "%.0f", g * 1024 }')"
      echo "| $stage | $ranks | $predicted | | | $tree_peak | $reason |" >> "$out.md"
      echo "{\"stage\": \"$stage\", \"ranks\": $ranks, \"failed\": \"$reason\", \"tree_peak_mib\": $tree_peak}" >> "$out.jsonl"
      tail -3 "$work/$name.log" >&2
      continue
    fi
    "$python" - "$work/$name/metrics.jsonl" "$stage" "$ranks" "$tree_peak" "$out" <<'EOF'
import json, sys
path, stage, ranks, tree_peak, out = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
memory = [r for r in rows if r["type"] == "memory"][-1]
train = [r for r in rows if r["type"] == "train"]
predicted, measured = memory["predicted_mib"], memory["peak_rss_mib_rank_mean"]
tps = train[-1]["tokens_per_s"] if train else 0
record = dict(memory, stage=stage, ranks=int(ranks), tree_peak_mib=float(tree_peak), tokens_per_s=tps)
open(out + ".jsonl", "a").write(json.dumps(record) + "\n")
open(out + ".md", "a").write(f"| {stage} | {ranks} | {predicted:.0f} | {measured:.0f} | {100 * (predicted - measured) / measured:+.1f}% "
                             f"| {float(tree_peak):.0f} | {tps:.1f} |\n")
EOF
  done
done
cat "$out.md"
