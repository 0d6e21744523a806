#!/usr/bin/env bash
# Installs EdgeRazor's dependencies from Debian packages and builds Release into build/
# (binaries in build/bin/). Idempotent: a second run installs nothing and rebuilds only what
# changed. Run as root on a fresh machine, or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libgloo-dev libopenblas0-openmp
  libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev
  libsentencepiece-dev libpcre2-dev libicu-dev
  libgtest-dev libgmock-dev sentencepiece
)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

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
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# fp32 GEMMs go through the system BLAS. OpenBLAS's pthread build (Debian's default when both are
# installed) keeps its own thread pool next to LibTorch's OpenMP threads, which spin between
# parallel regions and take the cores away from it: the fp32 QAD step ran 2x slower
# (bench/README.md). The OpenMP build shares LibTorch's threads.
multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  alternative="$lib-$multiarch"
  wanted="/usr/lib/$multiarch/openblas-openmp/$lib"
  current="$(update-alternatives --query "$alternative" 2>/dev/null | sed -n 's/^Value: //p' || true)"
  if [[ -e "$wanted" && "$current" != "$wanted" ]]; then
    echo "setup: selecting OpenBLAS (OpenMP) for $lib, system-wide (update-alternatives --set $alternative)"
    $SUDO update-alternatives --set "$alternative" "$wanted" >/dev/null ||
      echo "setup: warning: could not select it (no root?); fp32 matmuls may run up to 2x slower" >&2
  fi
done

scripts/build.sh
echo "setup: built into build/ (tools in build/bin/)"
