#!/usr/bin/env bash
# Runs edgerazor-bench-loss for CE + EAKLD forward+backward, chunked vs naive, and prints one
# JSON line per measured step (see bench/README-distill.md for results and how to read them).
#   bench/eakld_bench.sh [B T V C]          defaults: 2 1024 151936 1024 (Qwen3-0.6B lm_head)
# The naive path needs ~14 GiB extra at the defaults; it runs under `ulimit -v` so a machine
# without the memory gets an allocation error instead of the OOM killer.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${EDGERAZOR_BIN:-$here/build/bin}/edgerazor-bench-loss"
B="${1:-2}" T="${2:-1024}" V="${3:-151936}" C="${4:-1024}"
grep -q avx512_bf16 /proc/cpuinfo && echo "# cpu: avx512_bf16 present (native bf16 matmul)" \
                                  || echo "# cpu: no avx512_bf16 (bf16 matmul is emulated, slow)"
common=(--batch "$B" --tokens "$T" --vocab "$V" --hidden "$C" --dtype bf16 --input hidden)
for chunk in 128 256 512; do
  "$bin" "${common[@]}" --mode chunked --chunk "$chunk" --repeat 2 | grep '"warmup":false'
done
( ulimit -v $((19 * 1024 * 1024)); "$bin" "${common[@]}" --mode naive --repeat 1 | grep '"warmup":false' ) \
  || echo "# naive: failed (out of memory?)"
