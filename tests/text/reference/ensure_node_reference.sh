#!/bin/sh
# Installs the Node reference implementations used by the text tests, once, into a cache folder
# (never at build time): @huggingface/tokenizers (tokenizer.json encode/decode) and
# @huggingface/jinja (chat templates). Exit 0 when ready; non-zero (with a reason on stderr)
# when node/npm are missing or the install fails, so the tests can skip.
set -e
cache="${EDGERAZOR_NPM_CACHE:-$HOME/.cache/edgerazor-npm}"
exec sh "$(dirname "$0")/../../fixtures/npm_install_once.sh" "$cache" "" \
  node_modules/@huggingface/tokenizers/package.json node_modules/@huggingface/jinja/package.json -- \
  @huggingface/tokenizers@0.2.0 @huggingface/jinja@0.5.11
