#!/usr/bin/env bash
# Peak memory and time of a GGUF export at real shapes (issue #16): writes a random-weight model
# folder for CONFIG once (bench/make_random_model.py, bf16), exports it with PRESET through
# edgerazor-export (which streams the checkpoint tensor by tensor) and prints a Markdown row and a
# final JSON line. The same export of the tiny stories260K model is timed too: its peak is the
# process's floor (LibTorch's code pages, allocator), so "peak - floor" is what the model costs.
#
#   bench/export_memory.sh                                   # Qwen3-0.6B shape, w1_58a8kv8_qwen3
#   CONFIG=dir PRESET=name TOKENIZER=dir bench/export_memory.sh [extra edgerazor-export flags]
#
# MODELS (default build/bench-models) caches the random folders (1.2 GB for Qwen3-0.6B).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${EDGERAZOR_BIN:-$here/build/bin}"
py="${PYTHON:-$here/.venv/bin/python}"
shared="${EDGERAZOR_SHARED_DATA_DIR:-$here/../shared/data}"
config="${CONFIG:-$here/bench/qwen3-0.6b}"
preset="${PRESET:-w1_58a8kv8_qwen3}"
tokenizer="${TOKENIZER:-$shared/models/qwen3-tokenizer}"
models="${MODELS:-$here/build/bench-models}"
out_dir="${OUT_DIR:-$(mktemp -d)}"
mkdir -p "$out_dir"

name="$(basename "$config")"
model="$models/$name-random-bf16"
if [[ ! -f "$model/model.safetensors" || "$model/model.safetensors" -ot "$config/config.json" ]]; then
  "$py" "$here/bench/make_random_model.py" "$config" "$model" --dtype bfloat16 --tokenizer "$tokenizer" >&2
fi

measure() {  # out source flags... -> "peak_kb wall_s"
  /usr/bin/time -f "%M %e" -o "$out_dir/time.txt" "$bin/edgerazor-export" "${@:2}" --format gguf --out "$1" \
    >"$out_dir/export.log" 2>&1 || { cat "$out_dir/export.log" >&2; exit 1; }
  cat "$out_dir/time.txt"
}
read -r floor_kb _ < <(measure "$out_dir/floor.gguf" "$shared/models/stories260K-hf" \
  --config "$here/configs/tiny-stories260k-w1.58.yaml")
read -r peak_kb wall_s < <(measure "$out_dir/model.gguf" "$model" --preset "$preset" "$@")
model_bytes=$(stat -c %s "$model/model.safetensors")
gguf_bytes=$(stat -c %s "$out_dir/model.gguf")
"$py" - "$name" "$preset" "$model_bytes" "$gguf_bytes" "$peak_kb" "$wall_s" "$floor_kb" <<'PY'
import json, sys
name, preset = sys.argv[1], sys.argv[2]
model_bytes, gguf_bytes, peak_kb, wall, floor_kb = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
mib = lambda b: b / 2**20
print("| model | preset | checkpoint MiB | GGUF MiB | peak RSS MiB | floor MiB | peak - floor MiB | peak / checkpoint | wall s |")
print("|---|---|---|---|---|---|---|---|---|")
print("| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.1f |" % (name, preset, mib(model_bytes), mib(gguf_bytes),
      peak_kb / 1024, floor_kb / 1024, (peak_kb - floor_kb) / 1024, peak_kb * 1024 / model_bytes, wall))
print(json.dumps({"bench": "export_memory", "model": name, "preset": preset, "checkpoint_bytes": model_bytes,
                  "gguf_bytes": gguf_bytes, "peak_rss_mb": peak_kb / 1024, "floor_rss_mb": floor_kb / 1024,
                  "wall_s": wall}))
PY
