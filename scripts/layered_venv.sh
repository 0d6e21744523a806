#!/bin/sh
# Prints the python of a cached venv holding PINS (from PyPI) on top of BASE_PYTHON's packages
# (seen through a .pth file, so torch and the rest are not installed twice), creating it once per
# machine under ~/.cache/edgerazor/NAME-<hash of pins and base> (EDGERAZOR_REFERENCE_CACHE
# overrides the folder). Concurrent callers wait on a lock; a failed install leaves no venv.
#
#   sh scripts/layered_venv.sh NAME BASE_PYTHON "pkg==1 other==2" "pkg, other"   # last: modules to import
set -eu
name="$1" base_python="$2" pins="$3" imports="$4"
key="$(printf '%s %s' "$pins" "$base_python" | sha1sum | cut -c1-10)"
cache="${EDGERAZOR_REFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgerazor}/$name-$key"
python="$cache/bin/python"
ready() { [ -f "$cache/.complete" ] && [ -x "$python" ]; }
if ready; then echo "$python"; exit 0; fi
mkdir -p "$(dirname "$cache")"
(
  flock 9
  if ! ready; then
    echo "$name: installing $pins into $cache (once per machine)" >&2
    rm -rf "$cache"
    "$("$base_python" -c 'import sys; print(sys._base_executable)')" -m venv "$cache"
    site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    # The base environment's packages, and the folders its own .pth files add (the torch it sees).
    "$base_python" -c 'import sys, sysconfig; print("\n".join([sysconfig.get_paths()["purelib"]] + [p for p in sys.path if p.endswith("site-packages")]))' \
      | awk '!seen[$0]++' > "$site/edgerazor-base.pth"
    "$python" -m pip install --quiet --disable-pip-version-check $pins >&2
    "$python" -c "import $imports" >&2
    touch "$cache/.complete"
  fi
) 9>"$cache.lock"
ready || { echo "$name: the install into $cache failed (see above)" >&2; exit 4; }
echo "$python"
