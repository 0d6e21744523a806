#!/usr/bin/env bash
# One QAD step, edgerazor against the peers a user would otherwise run, in one run on the same
# shapes, precision, data (random tokens, seed 0), thread count and steps; prints a Markdown table
# and writes it with the raw JSON to $RESULTS.{md,json} when RESULTS is set.
#
#   bench/peers.sh --seq 256 --batch 4 --steps 6                      # the 60M shape (default flags)
#   bench/peers.sh --model bench/qwen3-0.6b --quant w1_58a8kv8_qwen3 --kv8 --kv-block 128 --seq 512 --batch 1 --steps 3
#   PEERS="edgerazor eager" ROUNDS=3 bench/peers.sh ...
#
# Peers (PEERS, default all four):
#   edgerazor  build/bin/edgerazor-bench step (its own allocator policy; --quant is its alone)
#   eager      bench/py_eager_step.py: the same step in plain PyTorch eager
#   compile    the same under torch.compile (default mode; the compiling first step is the warm-up)
#   torchao    the student from torchao QAT fake quantizers (int2 weights, int8 dynamic activations) + the same KD loss
# The Python peers run at their best: on the project's pinned torch (bench/install_peers.sh adds
# torchao over .venv), tcmalloc preloaded (PEER_MALLOC below: glibc's own settings cost them most of
# a step in page faults on these VMs), torch.set_num_threads = ours (--threads, default all cores). --w-block,
# --a-block and --kv-block are the Python peers' alone (they must match --quant's blocks).
# Every program runs under bench/run_limited.py with LIMIT_MB (default 22528, 22 GiB of the 24):
# one that goes above is killed and reported as not fitting, with the size it had reached.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${EDGERAZOR_BIN:-$here/build/bin}/edgerazor-bench"
peers="${PEERS:-edgerazor eager compile torchao}"
rounds="${ROUNDS:-1}"
limit="${LIMIT_MB:-22528}"
threads="$(nproc)"
cpp_args=() py_args=()
while (($#)); do
  case "$1" in
    --quant) cpp_args+=("$1" "$2"); shift 2 ;;
    --w-block | --a-block | --kv-block) py_args+=("$1" "$2"); shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    *) cpp_args+=("$1"); py_args+=("$1"); shift ;;
  esac
done
cpp_args+=(--threads "$threads") py_args+=(--threads "$threads")
[ -x "$bin" ] || { echo "peers.sh: $bin not found; build it first (scripts/build.sh)" >&2; exit 1; }
py="$(sh "$here/bench/install_peers.sh")"
# The Python peers' allocator (PEER_MALLOC): tcmalloc preloaded (default: the fastest for them),
# jemalloc preloaded, both told never to give freed memory back (Debian's libtcmalloc-minimal4 /
# libjemalloc2, installed by scripts/setup.sh), or glibc told to keep freed memory. glibc maps
# every block of 32 MiB and more (its largest mmap threshold) afresh each time, so on these VMs the
# Qwen3-0.6B step under torch.compile took 17.2 s with it, 12.7 s with jemalloc and 9.3 s with
# tcmalloc (bench/README.md).
peer_malloc="${PEER_MALLOC:-tcmalloc}"
lib=/usr/lib/x86_64-linux-gnu
preload=""
case "$peer_malloc" in
  glibc) malloc_env=(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=18446744073709551615 MALLOC_TOP_PAD_=67108864) ;;
  jemalloc) preload="$lib/libjemalloc.so.2"; malloc_env=(LD_PRELOAD="$preload" MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1") ;;
  tcmalloc) preload="$lib/libtcmalloc_minimal.so.4"; malloc_env=(LD_PRELOAD="$preload" TCMALLOC_RELEASE_RATE=0) ;;
  *) echo "peers.sh: PEER_MALLOC must be glibc, jemalloc or tcmalloc, got '$peer_malloc'" >&2; exit 2 ;;
esac
[ -z "$preload" ] || [ -e "$preload" ] || { echo "peers.sh: $preload not found (scripts/setup.sh installs it)" >&2; exit 1; }
best_env=(env "${malloc_env[@]}" PYTHONWARNINGS=ignore TORCH_CPP_LOG_LEVEL=ERROR)

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= rounds; r++)); do
  for peer in $peers; do
    case "$peer" in
      edgerazor) cmd=("$bin" step --json "${cpp_args[@]}") ;;
      eager) cmd=("${best_env[@]}" "$py" "$here/bench/py_eager_step.py" step "${py_args[@]}") ;;
      compile) cmd=("${best_env[@]}" "$py" "$here/bench/py_eager_step.py" step --compile "${py_args[@]}") ;;
      torchao) cmd=("${best_env[@]}" "$py" "$here/bench/py_eager_step.py" step --peer torchao "${py_args[@]}") ;;
      *) echo "peers.sh: unknown peer '$peer' (edgerazor eager compile torchao)" >&2; exit 2 ;;
    esac
    echo "# round $r: $peer" >&2
    status=0
    "$here/bench/run_limited.py" "$limit" "$out/limit.json" -- "${cmd[@]}" >"$out/run.log" 2>"$out/err.log" || status=$?
    line="$(grep '^{.*"tokens_per_s"' "$out/run.log" | tail -n 1 || true)"
    [ -n "$line" ] || line='{}'
    reason=""
    if ((status != 0)); then reason="$( (grep -v '^W[0-9]' "$out/err.log" || true) | tail -n 3 | tr '\n' ' ' | cut -c1-300)"; fi
    "$py" -c 'import json, sys
r = json.loads(sys.argv[1]); r["peer"] = sys.argv[2]; r["limit"] = json.load(open(sys.argv[3])); r["failure"] = sys.argv[4]
print(json.dumps(r))' "$line" "$peer" "$out/limit.json" "$reason" >>"$out/all.jsonl"
  done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

"$py" - "$out/all.jsonl" "$peers" "$load_before" "$load_after" "${RESULTS:-}" "$peer_malloc" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
order, load_before, load_after, results, peer_malloc = sys.argv[2].split(), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
by = {p: [r for r in rows if r["peer"] == p] for p in order}
ok = lambda r: "tokens_per_s" in r and not r["limit"]["killed_over_limit"] and r["limit"]["exit_code"] == 0
def summary(p):
    runs = [r for r in by[p] if ok(r)]
    if not runs:
        r = by[p][-1]
        why = ("killed above %.0f MiB (it had reached %.0f MiB)" % (r["limit"]["limit_mb"], r["limit"]["tree_peak_rss_mb"])
               if r["limit"]["killed_over_limit"] else "failed (exit %d): %s" % (r["limit"]["exit_code"], r["failure"]))
        return {"peer": p, "fits": False, "why": why, "tree_peak_rss_mb": r["limit"]["tree_peak_rss_mb"]}
    med = lambda k: statistics.median(r[k] for r in runs)
    phases = {}
    for k in runs[-1].get("phases_ms", {}):
        phases[k] = statistics.median(r["phases_ms"].get(k, 0) for r in runs)
    return {"peer": p, "fits": True, "impl": runs[-1].get("impl", ""), "step_ms": med("step_ms"),
            "step_ms_min": min(r["step_ms_min"] for r in runs), "tokens_per_s": med("tokens_per_s"),
            "tokens_per_s_best": max(r["config"]["batch"] * r["config"]["seq"] / (r["step_ms_min"] / 1e3) for r in runs),
            "peak_rss_mb": med("peak_rss_mb"), "tree_peak_rss_mb": statistics.median(r["limit"]["tree_peak_rss_mb"] for r in runs),
            "mfu": med("mfu"), "matmul_peak_gflops": med("matmul_peak_gflops"), "loss": runs[-1].get("loss"),
            "phases_ms": phases, "config": runs[-1]["config"], "dtype": runs[-1]["dtype"], "threads": runs[-1]["threads"],
            "rounds": len(runs)}
table = [summary(p) for p in order]
# One matmul peak for every MFU: the best any program measured in this run (a program measures its
# own at start-up, where torch.compile's worker processes can halve it).
peak = max([t["matmul_peak_gflops"] for t in table if t["fits"]] + [0])
for t in table:
    if t["fits"]:
        t["mfu_own_peak"] = t["mfu"]
        t["mfu"] = t["mfu"] * t["matmul_peak_gflops"] / peak
ours = next((t for t in table if t["peer"] == "edgerazor" and t["fits"]), None)
peers = [t for t in table if t["peer"] != "edgerazor" and t["fits"]]
best = max(peers, key=lambda t: t["tokens_per_s"]) if peers else None
cfg = (ours or (peers[0] if peers else {})).get("config", {})
lines = ["config: %s, dtype %s, %s threads, %d round(s); Python peers' allocator: %s; load average %s -> %s" % (
    json.dumps(cfg), (ours or best or {}).get("dtype", "?"), (ours or best or {}).get("threads", "?"),
    max([t.get("rounds", 0) for t in table] + [0]), peer_malloc, load_before, load_after), "",
    "| program | step ms (median) | step ms (min) | tokens/s (median) | edgerazor vs it | peak RSS MiB | its RSS / edgerazor's | MFU | teacher | student fwd | loss fwd | backward | optimizer | loss |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for t in table:
    if not t["fits"]:
        lines.append("| %s | - | - | - | - | %.0f | - | - | - | - | - | - | - | %s |" % (t["peer"], t["tree_peak_rss_mb"], t["why"]))
        continue
    ph = t["phases_ms"]
    ratio = "%.2fx" % (ours["tokens_per_s"] / t["tokens_per_s"]) if ours else "-"
    mem = "%.2f" % (t["peak_rss_mb"] / ours["peak_rss_mb"]) if ours else "-"
    lines.append("| %s | %.0f | %.0f | %.1f | %s | %.0f | %s | %.1f %% | %.0f | %.0f | %.0f | %.0f | %.0f | %.5g |" % (
        t["peer"], t["step_ms"], t["step_ms_min"], t["tokens_per_s"], ratio, t["peak_rss_mb"], mem, 100 * t["mfu"],
        ph.get("teacher_forward", 0), ph.get("student_forward", 0), ph.get("loss_forward", 0), ph.get("backward", 0),
        ph.get("optimizer", 0), t["loss"] or 0))
verdict = {}
if ours and best:
    verdict = {"best_peer": best["peer"], "speedup_vs_best": ours["tokens_per_s"] / best["tokens_per_s"],
               "rss_vs_best": ours["peak_rss_mb"] / best["peak_rss_mb"]}
    lines += ["", "edgerazor vs the fastest peer that fits (%s): %.2fx the tokens/s at %.2fx its peak RSS; MFU %.1f %% of %.0f GFLOP/s (the best matmul peak measured in the run; MFU counts the model's GEMM FLOPs, 4 x forward)" % (
        best["peer"], verdict["speedup_vs_best"], verdict["rss_vs_best"], 100 * ours["mfu"], peak)]
text = "\n".join(lines)
print(text)
doc = {"peers": table, "verdict": verdict, "python_peers_malloc": peer_malloc,
       "load_average": {"before": load_before, "after": load_after}}
if results:
    open(results + ".md", "w").write(text + "\n")
    open(results + ".json", "w").write(json.dumps(doc, indent=1) + "\n")
print(json.dumps({"peers_summary": verdict}))
PY
