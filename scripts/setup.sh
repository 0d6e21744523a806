#!/usr/bin/env bash
# Installs EdgeRazor's dependencies and builds Release into build/ (binaries in build/bin/):
#   - Debian packages (compiler, CMake/Ninja/ccache, yaml-cpp, CLI11, spdlog, nlohmann-json,
#     sentencepiece, ICU, PCRE2, GoogleTest);
#   - LibTorch: the PyPI torch wheel at the pinned version below, into the project's Python
#     environment (.venv, a link to a per-machine folder so that clean clones share one copy);
#   - then configures against that wheel (torch.utils.cmake_prefix_path) and builds.
# Idempotent: a second run installs nothing and rebuilds only what changed. Run as root on a
# fresh machine, or as a user with sudo.
#
# Environment:
#   EDGERAZOR_VENV         where the Python environment lives (default
#                          ~/.cache/edgerazor/venv-torch-<version>-py<X.Y>; .venv links to it)
#   EDGERAZOR_TORCH_PREFIX use this LibTorch instead of the wheel (an unpacked official libtorch
#                          zip, CPU or CUDA); no Python environment is created
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_pin.sh

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev
  libsentencepiece-dev libpcre2-dev libicu-dev
  libgtest-dev libgmock-dev sentencepiece
  time  # /usr/bin/time: peak RSS in bench/export_memory.sh (and its test)
  # Headers only: c10d's ProcessGroupGloo.hpp includes <gloo/...> and the wheel ships none.
  # Nothing links Debian's libgloo (the wheel's libtorch_cpu carries its own Gloo); see
  # src/distributed/process_group.cpp for why only pointer-typed Gloo members cross that header.
  libgloo-dev
  # The allocators bench/peers.sh preloads into the Python peers (PEER_MALLOC; tcmalloc by default).
  libtcmalloc-minimal4
  libjemalloc2
)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
python="$(command -v python3 || true)"
if [[ -z "$python" ]]; then
  missing+=(python3 python3-venv)
elif ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  python="$(command -v python3)"
fi

if [[ -z "${EDGERAZOR_TORCH_PREFIX:-}" ]]; then
  py_version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  venv="${EDGERAZOR_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/edgerazor/venv-torch-$EDGERAZOR_TORCH_VERSION-py$py_version}"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "$EDGERAZOR_TORCH_CHECK" >/dev/null 2>&1; then
    echo "setup: installing torch==$EDGERAZOR_TORCH_VERSION from PyPI into $venv (about 5 GB, once per machine)"
    mkdir -p "$(dirname "$venv")"
    # One installer at a time per machine (two clean clones may run setup at once).
    (
      flock 9
      if ! "$venv/bin/python" -c "$EDGERAZOR_TORCH_CHECK" >/dev/null 2>&1; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
          "torch==$EDGERAZOR_TORCH_VERSION" "numpy==$EDGERAZOR_NUMPY_VERSION"
        "$venv/bin/python" -c "$EDGERAZOR_TORCH_CHECK"
      fi
    ) 9>"$venv.lock"
  fi
  # The project's handle on its environment; a real folder there (a user's own) is left alone.
  if [[ -L .venv || ! -e .venv ]]; then
    ln -sfn "$venv" .venv
  fi
fi

scripts/build.sh
echo "setup: built into build/ (tools in build/bin/)"
