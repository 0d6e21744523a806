#!/bin/sh
# Installs the Node reference implementations used by the text tests, once, into a cache folder
# (never at build time): @huggingface/tokenizers (tokenizer.json encode/decode) and
# @huggingface/jinja (chat templates). Exit 0 when ready; non-zero (with a reason on stderr)
# when node/npm are missing or the install fails, so the tests can skip.
set -e
cache="${EDGERAZOR_NPM_CACHE:-$HOME/.cache/edgerazor-npm}"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node and npm are not installed" >&2
  exit 3
fi
ready() {
  [ -f "$cache/node_modules/@huggingface/tokenizers/package.json" ] &&
    [ -f "$cache/node_modules/@huggingface/jinja/package.json" ]
}
ready && exit 0
mkdir -p "$cache"
# Several test processes may start at once: one installs, the others wait.
(
  flock 9
  ready || npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
    @huggingface/tokenizers@0.2.0 @huggingface/jinja@0.5.11 >&2
) 9>"$cache/.install.lock"
ready || { echo "npm install into $cache failed" >&2; exit 4; }
