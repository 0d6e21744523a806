#!/bin/sh
# Installs the pinned PyPI reference implementations the tests compare with, once per machine,
# into a cache (never at build time), and prints that environment's python on stdout:
#   transformers (models, AutoTokenizer, apply_chat_template's Jinja environment), tokenizers,
#   jinja2, gguf (the GGUF reader of llama.cpp's own repository) and llama-cpp-python (llama.cpp,
#   built once from its source distribution: a few minutes on 2 cores).
# The environment sees the project's torch (.venv, scripts/setup.sh) through a .pth file rather
# than installing a second copy. Exits 0 when ready; non-zero with the reason on stderr.
# Run by ctest as the fixture test reference.install; scripts/demo.sh uses it for llama.cpp.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$root/scripts/torch_pin.sh"
PINS="transformers==5.25.0 tokenizers==0.23.3 jinja2==3.1.6 gguf==0.19.0 safetensors==0.8.0 llama-cpp-python==0.3.36"
torch_python="${EDGERAZOR_TORCH_PYTHON:-$root/.venv/bin/python}"
[ -x "$torch_python" ] || torch_python="$(command -v python3)"
key="$(printf '%s %s' "$PINS" "$EDGERAZOR_TORCH_VERSION" | sha1sum | cut -c1-10)"
cache="${EDGERAZOR_REFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgerazor/reference-$key}"
python="$cache/bin/python"
if [ "${EDGERAZOR_SKIP_REFERENCES:-}" = 1 ]; then
  echo "reference: EDGERAZOR_SKIP_REFERENCES=1: not installed; the reference tests skip" >&2
  exit 0
fi
ready() { [ -f "$cache/.complete" ] && [ -x "$python" ]; }
if ready; then echo "$python"; exit 0; fi
mkdir -p "$(dirname "$cache")"
(
  flock 9
  if ! ready; then
    echo "reference: installing $PINS into $cache (once per machine)" >&2
    rm -rf "$cache"
    base="$("$torch_python" -c 'import sys; print(sys._base_executable)')"
    "$base" -m venv "$cache"
    site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    if "$torch_python" -c "$EDGERAZOR_TORCH_CHECK" 2>/dev/null; then
      "$torch_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/edgerazor-torch.pth"
    else
      PINS="$PINS torch==$EDGERAZOR_TORCH_VERSION numpy==$EDGERAZOR_NUMPY_VERSION"
    fi
    # llama.cpp for this CPU, without the server/examples; 2 compile jobs on our 2-core machines.
    CMAKE_ARGS="-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      "$python" -m pip install --quiet --disable-pip-version-check $PINS >&2
    "$python" -c "import torch, transformers, tokenizers, jinja2, gguf, llama_cpp" >&2
    touch "$cache/.complete"
  fi
) 9>"$cache.lock"
ready || { echo "reference: the install into $cache failed (see above)" >&2; exit 4; }
echo "$python"
