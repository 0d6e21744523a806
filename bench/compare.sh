#!/usr/bin/env bash
# Runs `edgerazor-bench step` and its PyTorch-eager baseline (bench/py_eager_step.py) with the same
# flags and prints both results and the ratios against the targets (DESIGN.md "Targets"):
# tokens/s >= 2x eager, MFU >= 35 % of the measured matmul peak, peak RSS <= 0.5x eager.
#
#   bench/compare.sh [flags of edgerazor-bench step]
#   bench/compare.sh --dtype fp32 --steps 6
#   ROUNDS=3 bench/compare.sh            # alternate C++ / eager 3 times, report medians
#
# Needs build/bin/edgerazor-bench (scripts/build.sh) and PyTorch: the project's pinned PyPI wheel
# in .venv (scripts/setup.sh); PYTHON defaults to .venv/bin/python, the same LibTorch version as
# the C++ side links. EDGERAZOR_BIN overrides build/bin.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${EDGERAZOR_BIN:-$here/build/bin}/edgerazor-bench"
py="${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}"
# The eager peer at its best: glibc keeps freed memory in the heap, the allocator policy
# edgerazor-bench gives itself (runtime::configure_allocator: mmap threshold 32 MiB, no trimming);
# on glibc's defaults eager spends most of a step in page faults here. Same threads: both default
# to the cores this process may use, and --threads N reaches both.
eager_env=(env MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=2147483647)
rounds="${ROUNDS:-1}"
[ -x "$bin" ] || { echo "compare.sh: $bin not found; build it first (scripts/build.sh)" >&2; exit 1; }
"$py" -c 'import torch' 2>/dev/null ||
  { echo "compare.sh: $py cannot import torch; run scripts/setup.sh (it installs the pinned torch wheel into .venv)" >&2; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)   ($(nproc) cores)"
for ((r = 1; r <= rounds; r++)); do
  "$bin" step --json "$@" | tail -n 1 >>"$out/cpp.jsonl"
  "${eager_env[@]}" "$py" "$here/bench/py_eager_step.py" step "$@" | tail -n 1 >>"$out/eager.jsonl"
done
echo "# load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

"$py" - "$out/cpp.jsonl" "$out/eager.jsonl" <<'EOF'
import json, statistics, sys
cpp = [json.loads(l) for l in open(sys.argv[1])]
eager = [json.loads(l) for l in open(sys.argv[2])]
def med(rows, key):
    return statistics.median(r[key] for r in rows)
c, e = cpp[-1], eager[-1]
print("config: %s  dtype %s  threads %d  rounds %d" % (json.dumps(c["config"]), c["dtype"], c["threads"], len(cpp)))
print("%-26s %12s %12s" % ("", "edgerazor", "eager"))
for key, fmt in [("tokens_per_s", "%12.1f"), ("step_ms", "%12.1f"), ("peak_rss_mb", "%12.1f"),
                 ("mfu", "%12.3f"), ("matmul_peak_gflops", "%12.1f"), ("achieved_gflops", "%12.1f")]:
    print("%-26s " % key + fmt % med(cpp, key) + " " + fmt % med(eager, key))
speed = med(cpp, "tokens_per_s") / med(eager, "tokens_per_s")
mem = med(cpp, "peak_rss_mb") / med(eager, "peak_rss_mb")
mfu = med(cpp, "mfu")
verdict = lambda ok: "met" if ok else "NOT met"
print("tokens/s ratio (edgerazor / eager): %.2fx   target >= 2x: %s" % (speed, verdict(speed >= 2)))
print("peak RSS ratio (edgerazor / eager): %.2f    target <= 0.5: %s" % (mem, verdict(mem <= 0.5)))
print("edgerazor MFU: %.1f %%                     target >= 35 %%: %s" % (100 * mfu, verdict(mfu >= 0.35)))
print(json.dumps({"compare": True, "config": c["config"], "dtype": c["dtype"], "tokens_per_s_ratio": speed,
                  "peak_rss_ratio": mem, "mfu": mfu, "eager_mfu": med(eager, "mfu")}))
EOF
