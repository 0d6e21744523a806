#!/bin/sh
# The peers' Python: torchao (pinned, from PyPI) in a cached venv layered over the project's
# pinned torch (.venv from scripts/setup.sh), so every peer runs on the LibTorch version the C++
# side links. Prints the python on stdout (~10 s once per machine, then instant).
set -eu
here="$(cd "$(dirname "$0")/.." && pwd)"
base="${PYTHON:-$here/.venv/bin/python}"
[ -x "$base" ] || { echo "install_peers: $base not found; run scripts/setup.sh first" >&2; exit 1; }
exec sh "$here/scripts/layered_venv.sh" bench-peers "$base" "torchao==0.18.0" "torchao, torch"
