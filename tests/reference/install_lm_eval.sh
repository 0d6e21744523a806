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
exec sh "$here/../../scripts/layered_venv.sh" lm-eval "$base_python" "$PINS" "lm_eval, accelerate, sentencepiece, transformers, torch"
