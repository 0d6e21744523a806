#!/usr/bin/env bash
# Builds if needed, then runs the whole test suite with ctest. Extra arguments go to ctest
# (e.g. scripts/test.sh -R quant).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure -j "${EDGERAZOR_TEST_JOBS:-2}" "$@"
