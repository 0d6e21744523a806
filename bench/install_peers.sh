#!/bin/sh
# The peers' Python: torchao (pinned, from PyPI) in a cached venv layered over the project's
# pinned torch (.venv from scripts/setup.sh), so every peer runs on the LibTorch version the C++
# side links. Also the allocators the Python peers may preload (bench/peers.sh PEER_MALLOC):
# Debian's libtcmalloc-minimal4 and libjemalloc2. Prints the python on stdout (~10 s once per
# machine, then instant).
set -eu
here="$(cd "$(dirname "$0")/.." && pwd)"
base="${PYTHON:-$here/.venv/bin/python}"
[ -x "$base" ] || { echo "install_peers: $base not found; run scripts/setup.sh first" >&2; exit 1; }
lib=/usr/lib/x86_64-linux-gnu
if [ ! -e "$lib/libtcmalloc_minimal.so.4" ] || [ ! -e "$lib/libjemalloc.so.2" ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      libtcmalloc-minimal4 libjemalloc2; } >&2 || echo "install_peers: could not install tcmalloc/jemalloc (PEER_MALLOC=glibc still works)" >&2
fi
exec sh "$here/scripts/layered_venv.sh" bench-peers "$base" "torchao==0.18.0" "torchao, torch"
