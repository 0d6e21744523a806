#!/usr/bin/env bash
# Installs EdgeRazor's dependencies from Debian packages and builds Release into build/
# (binaries in build/bin/). Idempotent: a second run installs nothing and rebuilds only what
# changed. Run as root on a fresh machine, or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libgloo-dev libopenblas0-pthread
  libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev
  libsentencepiece-dev libpcre2-dev libicu-dev
  libgtest-dev libgmock-dev sentencepiece
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
# Node runs the reference implementations some tests compare with (llama.cpp via node-llama-cpp,
# Hugging Face tokenizers/jinja); the tests install those npm packages on first use.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

scripts/build.sh
echo "setup: built into build/ (tools in build/bin/)"
