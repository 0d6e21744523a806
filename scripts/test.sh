#!/usr/bin/env bash
# Builds if needed, then runs the whole test suite with ctest. Extra arguments go to ctest
# (e.g. scripts/test.sh -R quant).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/edgerazor-ccache}"
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CCACHE_BASEDIR="$PWD"
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j "${EDGERAZOR_BUILD_JOBS:-$(nproc)}"
cd build
ctest --output-on-failure -j "${EDGERAZOR_TEST_JOBS:-2}" "$@"
