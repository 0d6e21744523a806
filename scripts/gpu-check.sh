#!/usr/bin/env bash
# The GPU check: on a machine with one NVIDIA GPU, from a clean clone, in under 8 minutes on an
# H100/H200. Configures against that machine's own PyTorch (python3 -c torch.utils...), builds
# what the check needs, then runs, writing everything to one report (gpu-check/report.md):
#   1. the GPU tests (build/bin/test_gpu: device specs, NCCL in the binary and a one-rank NCCL
#      all_reduce on the GPU, cuda vs cpu logits, bf16 autocast step, pinned batches, memory stats);
#   2. a 1-GPU QAD run on stories260K (W1.58-A8-KV8, 40 steps): the loss must fall; then the same
#      run killed (SIGKILL) after its step-8 checkpoint and resumed must end with the uninterrupted
#      run's weights, bit for bit;
#   3. NCCL: the one-rank NCCL group of step 1 and, with two or more GPUs, a 2-rank data-parallel
#      QAD run (--nproc-per-node 2, backend nccl); then ZeRO stage 3 (distributed.sharding:
#      parameters, layers gathered on use) on one GPU against the unsharded run with the same
#      recomputation (weights within GPU round-off after 10 steps), and on 2 GPUs when there are;
#   4. the QAD step benchmark on the GPU at Qwen3-0.6B shapes (V 151936, C 1024, L 28, H 16/8,
#      F 3072, T 512, B 1, bf16): edgerazor-bench step against the PyTorch eager and
#      torch.compile versions of the same step (bench/py_eager_step.py --device cuda [--compile]).
#
# Dependencies. The GPU machine has Python with PyTorch (CUDA), cmake, ninja and nvcc, but not our
# Debian -dev packages and no network. Fetch them beforehand on a Debian 12 machine with apt:
#   scripts/gpu-check.sh --fetch-debs .gpu-debs     # apt-get download of the .deb files (~25 MB)
# and bring .gpu-debs/ along (the device tool: carry [".gpu-debs"]). Here they are unpacked with
# `dpkg -x` into .gpu-deps/ (headers, libraries, CMake and pkg-config files), which CMake and the
# loader are pointed at. Where the packages are installed system-wide, no .debs are needed.
#
#   scripts/gpu-check.sh [--debs DIR] [--out DIR] [--skip-bench] [--configure-only]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DEBS=(libyaml-cpp-dev libyaml-cpp0.7 libcli11-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
      nlohmann-json3-dev libsentencepiece-dev libsentencepiece0 libprotobuf-lite32 libpcre2-dev
      libpcre2-8-0 libicu-dev libicu72 libgtest-dev libgmock-dev libgloo-dev sentencepiece)

if [[ "${1:-}" == --fetch-debs ]]; then
  dir="${2:?usage: $0 --fetch-debs DIR}"
  mkdir -p "$dir"
  (cd "$dir" && apt-get download "${DEBS[@]}")
  echo "gpu-check: $(ls "$dir"/*.deb | wc -l) packages in $dir; carry it to the GPU machine"
  exit 0
fi

DEB_DIR=.gpu-debs
OUT=gpu-check
SKIP_BENCH=0
CONFIGURE_ONLY=0
while (($#)); do
  case $1 in
    --debs) DEB_DIR=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --skip-bench) SKIP_BENCH=1; shift ;;
    --configure-only) CONFIGURE_ONLY=1; shift ;;   # a dry run of the dependency set-up (no GPU needed)
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
REPORT=$OUT/report.md
T0=$SECONDS
log() { echo "$*" | tee -a "$REPORT"; }
section() { log ""; log "## $*  (t = $((SECONDS - T0)) s)"; }
# run NAME CMD...: output to $OUT/NAME.log, the tail into the report, status remembered
FAILED=()
run() {
  local name=$1; shift
  local rc=0
  "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  log '```'
  tail -n "${TAIL_LINES:-15}" "$OUT/$name.log" | tee -a "$REPORT"
  log '```'
  if ((rc != 0)); then FAILED+=("$name (exit $rc)"); log "**$name failed (exit $rc)**"; fi
  return 0
}

: >"$REPORT"
log "# EdgeRazor GPU check ($(date -u +%Y-%m-%dT%H:%MZ))"
PYTHON=${PYTHON:-python3}
section "Machine"
log '```'
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "nvidia-smi: not found"
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
  nvcc --version | tail -n 1; cmake --version | head -n 1; nproc; } | tee -a "$REPORT"
log '```'

# ---- dependencies ----------------------------------------------------------------------------
PREFIX=$ROOT/.gpu-deps
if compgen -G "$DEB_DIR/*.deb" >/dev/null; then
  if [[ ! -f $PREFIX/.unpacked ]]; then
    rm -rf "$PREFIX"
    for deb in "$DEB_DIR"/*.deb; do dpkg -x "$deb" "$PREFIX"; done
    touch "$PREFIX/.unpacked"
  fi
  multiarch=x86_64-linux-gnu
  # Debian's .pc and CMake files name /usr; point them at the prefix.
  grep -rlI "/usr" "$PREFIX/usr/lib/$multiarch/pkgconfig" "$PREFIX/usr/share/pkgconfig" 2>/dev/null |
    xargs -r sed -i "s|^prefix=/usr|prefix=$PREFIX/usr|; s|=/usr/|=$PREFIX/usr/|g"
  # Unversioned .so links of the -dev packages point at absolute /usr paths: make them relative.
  for link in "$PREFIX"/usr/lib/$multiarch/*.so; do
    [[ -L $link ]] && ln -sfn "$(basename "$(readlink "$link")")" "$link"
  done
  export PKG_CONFIG_PATH=$PREFIX/usr/lib/$multiarch/pkgconfig:$PREFIX/usr/share/pkgconfig:${PKG_CONFIG_PATH:-}
  export LD_LIBRARY_PATH=$PREFIX/usr/lib/$multiarch:${LD_LIBRARY_PATH:-}
  export PATH=$PREFIX/usr/bin:$PATH
  DEP_PREFIX="$PREFIX/usr"
  DEP_ARGS=(-DEDGERAZOR_GLOO_INCLUDE_DIR="$PREFIX/usr/include" -DCMAKE_INCLUDE_PATH="$PREFIX/usr/include"
            -DCMAKE_LIBRARY_PATH="$PREFIX/usr/lib/$multiarch")
else
  DEP_PREFIX=""
  DEP_ARGS=()
fi

# ---- build -----------------------------------------------------------------------------------
section "Build (against this machine's PyTorch)"
TORCH_PREFIX=$("$PYTHON" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
BUILD=build-gpu
export CCACHE_DISABLE=1
run configure cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX${DEP_PREFIX:+;$DEP_PREFIX}" "${DEP_ARGS[@]}"
if ((CONFIGURE_ONLY)); then
  log "configure-only: stopping after the configure step"
  ((${#FAILED[@]} == 0)) || exit 1
  exit 0
fi
run build cmake --build "$BUILD" -j "$(nproc)" --target edgerazor-train edgerazor-data edgerazor-bench test_gpu
BIN=$BUILD/bin
if [[ ! -x $BIN/edgerazor-train ]]; then
  log "build failed: nothing to run"
  exit 1
fi
log '```'
ldd "$BIN/edgerazor-train" | grep -E 'torch|cuda|nccl|cublas' | tee -a "$REPORT"
log '```'

# ---- 1. GPU tests ----------------------------------------------------------------------------
section "1. GPU tests (test_gpu)"
TAIL_LINES=40 run gpu-tests "$BIN/test_gpu" --gtest_brief=0

# ---- 2. 1-GPU QAD on stories260K, loss falls, exact resume -----------------------------------
section "2. QAD on stories260K, one GPU (40 steps), and an exact resume"
SHARED=${EDGERAZOR_SHARED_DATA:-$ROOT/../shared/data}
DATA=$OUT/data
mkdir -p "$DATA"
"$BIN/edgerazor-data" encode --tokenizer "$SHARED/models/stories260K-hf" --bos --split auto \
  --in "$SHARED/text/tinystories-train-sample.txt" --out "$DATA/train.bin" >"$OUT/encode.log" 2>&1
"$BIN/edgerazor-data" encode --tokenizer "$SHARED/models/stories260K-hf" --bos --split none \
  --in "$SHARED/text/tinystories-valid-sample.txt" --out "$DATA/valid.bin" >>"$OUT/encode.log" 2>&1
QAD=(configs/tiny-stories260k-w1.58.yaml --device cuda --quiet
     --set "model.teacher=$SHARED/models/stories260K-hf" --set "model.student=$SHARED/models/stories260K-hf"
     --set "data.sources[0].paths=[$DATA/train.bin]" --set "data.eval_sources[0].paths=[$DATA/valid.bin]"
     --set train.max_steps=40 --set train.log_interval=1 --set train.save_interval=4 --set train.eval_interval=0
     --set train.keep_last=20 --set "run.output_dir=$OUT/runs")
run qad-full "$BIN/edgerazor-train" "${QAD[@]}" --set run.name=full
# The same run killed (SIGKILL) once its step-8 checkpoint is complete, then resumed.
"$BIN/edgerazor-train" "${QAD[@]}" --set run.name=resumed >"$OUT/qad-killed.log" 2>&1 &
victim=$!
for _ in $(seq 600); do [[ -f $OUT/runs/resumed/checkpoints/step_8/DONE ]] && break; sleep 0.1; done
kill -9 "$victim" 2>/dev/null || true
wait "$victim" 2>/dev/null || true
log "killed the second run after: $(ls "$OUT/runs/resumed/checkpoints" | tr '\n' ' ')"
run qad-resume "$BIN/edgerazor-train" "${QAD[@]}" --set run.name=resumed --resume
"$PYTHON" - "$OUT/runs" >"$OUT/qad-compare.log" 2>&1 <<'PY' || FAILED+=("qad-compare")
import json, struct, sys, pathlib, torch
root = pathlib.Path(sys.argv[1])
def load_file(path):  # safetensors without the safetensors package
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[8 + n + a:8 + n + b]), dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out
def losses(name):
    rows = [json.loads(l) for l in open(root / name / "metrics.jsonl")]
    return [r["loss"] for r in rows if "loss" in r]
full = losses("full")
print(f"loss first {full[0]:.4f} -> last {full[-1]:.4f}")
assert full[-1] < full[0], "the loss did not fall"
a = load_file(str(root / "full/checkpoints/step_40/model.safetensors"))
b = load_file(str(root / "resumed/checkpoints/step_40/model.safetensors"))
worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
print(f"resumed vs uninterrupted: max |dw| = {worst:.3e} over {len(a)} tensors")
assert worst == 0.0, "the resumed run does not end with the uninterrupted run's weights"
PY
log '```'; cat "$OUT/qad-compare.log" | tee -a "$REPORT"; log '```'

# ---- 3. NCCL runs ----------------------------------------------------------------------------
section "3. NCCL with two ranks (when there are two GPUs)"
log "The one-rank NCCL group (a real communicator on the GPU, one all_reduce) is test_gpu's"
log "GpuBuild.NcclBackendIsInTheBinary above; a training job creates a process group from 2 ranks on."
if (($("$PYTHON" -c 'import torch; print(torch.cuda.device_count())') >= 2)); then
  run nccl-2rank "$BIN/edgerazor-train" "${QAD[@]}" --set "run.output_dir=$OUT/runs" --set run.name=nccl2 \
    --set train.max_steps=10 --set distributed.backend=nccl --nproc-per-node 2
else
  log "one GPU: the 2-rank NCCL run is skipped"
fi

# ---- 3b. ZeRO stage 3 (distributed.sharding: parameters) ---------------------------------------
section "3b. ZeRO stage 3 on the GPU: layers gathered on use, against the unsharded run"
ZERO=(--set "run.output_dir=$OUT/runs" --set train.max_steps=10 --set train.gradient_checkpointing=true
      --set train.save_interval=0)
run zero3-ref "$BIN/edgerazor-train" "${QAD[@]}" "${ZERO[@]}" --set run.name=zero3_ref
run zero3 "$BIN/edgerazor-train" "${QAD[@]}" "${ZERO[@]}" --set run.name=zero3 --set distributed.sharding=parameters
if (($("$PYTHON" -c 'import torch; print(torch.cuda.device_count())') >= 2)); then
  run zero3-2rank "$BIN/edgerazor-train" "${QAD[@]}" "${ZERO[@]}" --set run.name=zero3_2rank \
    --set distributed.sharding=parameters --set distributed.backend=nccl --nproc-per-node 2
fi
"$PYTHON" - "$OUT/runs" >"$OUT/zero3-compare.log" 2>&1 <<'PY' || FAILED+=("zero3-compare")
import json, struct, sys, pathlib, torch
root = pathlib.Path(sys.argv[1])
def load_file(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return {k: torch.frombuffer(bytearray(data[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]),
                                dtype=torch.float32).reshape(t["shape"]) for k, t in header.items() if k != "__metadata__"}
a = load_file(str(root / "zero3_ref/checkpoints/step_10/model.safetensors"))
b = load_file(str(root / "zero3/checkpoints/step_10/model.safetensors"))
worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
scale = max(a[k].abs().max().item() for k in a)
print(f"stage 3 vs unsharded (both recomputing layers), 10 steps: max |dw| = {worst:.3e} (largest weight {scale:.3f})")
memory = [json.loads(l) for l in open(root / "zero3/metrics.jsonl") if '"memory"' in l]
print("memory record:", memory[-1] if memory else "missing")
assert worst <= 1e-3 * scale, "stage 3 drifted from the unsharded run beyond GPU round-off"
PY
log '```'; cat "$OUT/zero3-compare.log" | tee -a "$REPORT"; log '```'

# ---- 4. step benchmark at Qwen3-0.6B shapes --------------------------------------------------
if ((SKIP_BENCH == 0)); then
  section "4. QAD step at Qwen3-0.6B shapes on the GPU: ours vs PyTorch eager vs torch.compile"
  SHAPE=(--vocab 151936 --dim 1024 --layers 28 --heads 16 --kv-heads 8 --ffn 3072 --seq 512 --batch 1
         --steps 6 --dtype bf16 --device cuda)
  run bench-ours "$BIN/edgerazor-bench" step --json "${SHAPE[@]}"
  run bench-eager "$PYTHON" bench/py_eager_step.py step "${SHAPE[@]}"
  run bench-compile "$PYTHON" bench/py_eager_step.py step "${SHAPE[@]}" --compile
  "$PYTHON" - "$OUT" <<'PY' | tee -a "$REPORT"
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {}
for name in ("ours", "eager", "compile"):
    try:
        rows[name] = json.loads(open(out / f"bench-{name}.log").read().strip().splitlines()[-1])
    except Exception as error:  # a failed run has no summary line
        rows[name] = {"error": str(error)}
print("| step | tokens/s | step ms | peak GPU MiB |\n|---|---|---|---|")
for name, r in rows.items():
    print(f"| {name} | {r.get('tokens_per_s', 'n/a')} | {r.get('step_ms', 'n/a')} | {r.get('peak_gpu_mb', 'n/a')} |")
PY
fi

section "Result"
if ((${#FAILED[@]})); then
  log "FAILED: ${FAILED[*]}"
  log "wall time $((SECONDS - T0)) s"
  exit 1
fi
log "all checks passed; wall time $((SECONDS - T0)) s"
