#!/usr/bin/env bash
# Configures (once) and builds Release into build/ (or $EDGERAZOR_BUILD_DIR, with the build type
# $EDGERAZOR_BUILD_TYPE). Used by setup.sh and test.sh.
# LibTorch comes from $EDGERAZOR_TORCH_PREFIX when set (a user's own LibTorch, e.g. the official
# zip), else from the project's Python environment .venv (scripts/setup.sh makes it): CMake finds
# the wheel through torch.utils.cmake_prefix_path.
# ccache keeps compiled objects across clean clones (CI builds from a fresh clone every time).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/edgerazor-ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CCACHE_BASEDIR="$PWD"
build_dir="${EDGERAZOR_BUILD_DIR:-build}"
if [[ ! -f "$build_dir/build.ninja" ]]; then
  if [[ -n "${EDGERAZOR_TORCH_PREFIX:-}" ]]; then
    torch_prefix="$EDGERAZOR_TORCH_PREFIX"
  elif [[ -x .venv/bin/python ]]; then
    # The real folder, not the .venv link inside this checkout: every clone then compiles against
    # the same absolute paths, which ccache and the precompiled header can share.
    torch_prefix="$(realpath "$(.venv/bin/python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')")"
  else
    echo "build: no LibTorch: run scripts/setup.sh (installs the pinned PyPI wheel into .venv)" \
         "or set EDGERAZOR_TORCH_PREFIX to your LibTorch folder" >&2
    exit 2
  fi
  cmake -S . -B "$build_dir" -G Ninja "-DCMAKE_BUILD_TYPE=${EDGERAZOR_BUILD_TYPE:-Release}" \
        "-DCMAKE_PREFIX_PATH=$torch_prefix" ${EDGERAZOR_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -j "${EDGERAZOR_BUILD_JOBS:-$(nproc)}"
