#!/usr/bin/env bash
# Builds if needed, then runs the whole test suite with ctest. Extra arguments go to ctest
# (e.g. scripts/test.sh -R quant).
#
# scripts/test.sh --sanitize [ctest args]: the same suite built with AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc, -O1) into build-sanitize/, where any memory error or
# undefined behaviour in our code aborts the test that hit it. LibTorch itself is not
# instrumented. What is left out, and why:
#   - leak detection: LibTorch and the CUDA runtime keep process-lifetime allocations by design;
#   - UBSan's vptr check: it compares typeinfo across the uninstrumented wheel's libraries and
#     reports torch's own classes;
#   - package.find_package_consumer and train.CustomTrainerExample.BuildsAgainstTheInstalledPackage:
#     those out-of-tree projects are built without the sanitizer runtime, which must load first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--sanitize" ]]; then
  shift
  # A build type of our own ("Sanitize"): CMake adds no flags for it, so CXXFLAGS/LDFLAGS are all.
  sanitizers="-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined"
  CXXFLAGS="-O1 -g1 -DNDEBUG -fno-omit-frame-pointer $sanitizers" LDFLAGS="$sanitizers" \
    EDGERAZOR_BUILD_DIR=build-sanitize EDGERAZOR_BUILD_TYPE=Sanitize scripts/build.sh
  # protect_shadow_gap=0: the CUDA driver maps memory where ASan would otherwise forbid it.
  export ASAN_OPTIONS="detect_leaks=0:detect_odr_violation=0:protect_shadow_gap=0:abort_on_error=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
  cd build-sanitize
  exec ctest --output-on-failure -j "${EDGERAZOR_TEST_JOBS:-2}" -E '^package\.|BuildsAgainstTheInstalledPackage' "$@"
fi
scripts/build.sh
cd build
ctest --output-on-failure -j "${EDGERAZOR_TEST_JOBS:-2}" "$@"
