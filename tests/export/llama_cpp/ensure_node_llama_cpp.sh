#!/bin/sh
# Installs llama.cpp's prebuilt CPU runtime (npm node-llama-cpp + its linux-x64 binaries) once,
# into a cache folder, never at build time. Prints the cache folder on stdout and exits 0 when
# ready; exits non-zero with a reason on stderr when node/npm are missing or the install fails,
# so the tests can skip with that reason.
set -e
cache="${EDGERAZOR_LLAMA_CPP_CACHE:-$HOME/.cache/edgerazor-llama-cpp}"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node and npm are not installed" >&2
  exit 3
fi
ready() {
  [ -f "$cache/node_modules/node-llama-cpp/dist/index.js" ] &&
    [ -d "$cache/node_modules/@node-llama-cpp/linux-x64" ]
}
if ! ready; then
  mkdir -p "$cache"
  # Several test processes may start at once: one installs, the others wait.
  (
    flock 9
    ready || NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
      --omit=optional node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 >&2
  ) 9>"$cache/.install.lock"
fi
ready || { echo "npm install of node-llama-cpp into $cache failed" >&2; exit 4; }
echo "$cache"
