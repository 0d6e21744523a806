#!/usr/bin/env bash
# Configures (once) and builds Release into build/. Used by setup.sh and test.sh.
# ccache keeps compiled objects across clean clones (CI builds from a fresh clone every time).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/edgerazor-ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CCACHE_BASEDIR="$PWD"
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j "${EDGERAZOR_BUILD_JOBS:-$(nproc)}"
