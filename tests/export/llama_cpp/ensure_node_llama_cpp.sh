#!/bin/sh
# Installs llama.cpp's prebuilt CPU runtime (npm node-llama-cpp + its linux-x64 binaries) once,
# into a cache folder, never at build time. Prints the cache folder on stdout and exits 0 when
# ready; exits non-zero with a reason on stderr when node/npm are missing or the install fails,
# so the tests can skip with that reason.
set -e
cache="${EDGERAZOR_LLAMA_CPP_CACHE:-$HOME/.cache/edgerazor-llama-cpp}"
NODE_LLAMA_CPP_SKIP_DOWNLOAD=true sh "$(dirname "$0")/../../fixtures/npm_install_once.sh" "$cache" node-llama-cpp \
  node_modules/node-llama-cpp/dist/index.js node_modules/@node-llama-cpp/linux-x64 -- \
  --omit=optional node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1
echo "$cache"
