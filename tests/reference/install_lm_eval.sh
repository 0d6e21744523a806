#!/bin/sh
# Installs lm-evaluation-harness (pinned, from PyPI) once per machine into its own cached venv,
# layered over the references of install.sh (transformers, torch, ... seen through a .pth file,
# so nothing is installed twice and llama.cpp is not rebuilt), and prints its python on stdout.
# sentencepiece + protobuf let transformers read stories260K's tokenizer.model; accelerate is
# an import of lm-eval's `hf` backend. Run by ctest as the fixture test reference.install_lm_eval.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
base_python="$(sh "$here/install.sh")"
if [ "${EDGERAZOR_SKIP_REFERENCES:-}" = 1 ]; then exit 0; fi
PINS="lm_eval==0.4.13 datasets==5.2.0 evaluate==0.4.6 accelerate==1.16.0 sentencepiece==0.2.3 protobuf==7.36.2"
key="$(printf '%s %s' "$PINS" "$base_python" | sha1sum | cut -c1-10)"
cache="${EDGERAZOR_REFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgerazor}/lm-eval-$key"
python="$cache/bin/python"
ready() { [ -f "$cache/.complete" ] && [ -x "$python" ]; }
if ready; then echo "$python"; exit 0; fi
mkdir -p "$(dirname "$cache")"
(
  flock 9
  if ! ready; then
    echo "reference: installing $PINS into $cache (once per machine)" >&2
    rm -rf "$cache"
    "$("$base_python" -c 'import sys; print(sys._base_executable)')" -m venv "$cache"
    site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    # The base environment's packages, and the folders its own .pth files add (the torch it sees).
    "$base_python" -c 'import sys, sysconfig; print("\n".join([sysconfig.get_paths()["purelib"]] + [p for p in sys.path if p.endswith("site-packages")]))' \
      | awk '!seen[$0]++' > "$site/edgerazor-reference.pth"
    "$python" -m pip install --quiet --disable-pip-version-check $PINS >&2
    "$python" -c "import lm_eval, accelerate, sentencepiece, transformers, torch" >&2
    touch "$cache/.complete"
  fi
) 9>"$cache.lock"
ready || { echo "reference: the lm-eval install into $cache failed (see above)" >&2; exit 4; }
echo "$python"
