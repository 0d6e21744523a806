#!/usr/bin/env bash
# Fuzzes the readers of user files with libFuzzer (clang, ASan + UBSan): scripts/fuzz.sh [NAME] [SECONDS].
# NAME is one harness under fuzz/harnesses/ (all of them, one after another, when omitted or "all");
# SECONDS is the time per harness (default 600). Seeds come from fuzz/make_seeds.py and ../shared/data;
# the growing corpus stays in build-fuzz/corpus/NAME; a crash, leak, timeout or unclear error is written
# to fuzz/regressions/NAME/, where ctest replays it from then on (fuzz.replay_NAME).
# EDGERAZOR_FUZZ_JOBS=N runs N harnesses at once (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
shared=${EDGERAZOR_SHARED_DATA:-$repo/../shared/data}
name=${1:-all}
seconds=${2:-600}
jobs=${EDGERAZOR_FUZZ_JOBS:-1}

[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2; exit 2; }
if ! command -v clang++ >/dev/null; then  # Debian's clang brings libFuzzer and the sanitizer runtimes
  echo "fuzz.sh: installing clang (libFuzzer) from Debian"
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang libclang-rt-dev
fi

all=$(cd fuzz/harnesses && ls *.cpp | sed 's/\.cpp$//')
if [[ "$name" == all ]]; then
  names=$all
elif [[ -f fuzz/harnesses/$name.cpp ]]; then
  names=$name
else
  echo "fuzz.sh: no harness '$name'; there are: $(echo $all)" >&2
  exit 2
fi

if [[ ! -f build-fuzz/build.ninja ]]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S fuzz -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}"
fi
cmake --build build-fuzz
python3 fuzz/make_seeds.py build-fuzz/seeds "$shared" "$repo"

fuzz_one() {
  local n=$1
  mkdir -p "build-fuzz/corpus/$n" "fuzz/regressions/$n"
  local log="build-fuzz/fuzz_$n.log"
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a reader that balloons is a finding.
  # Exit status is kept in the log line below rather than stopping the other harnesses.
  set +e
  "build-fuzz/fuzz_$n" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/regressions/$n/" "build-fuzz/corpus/$n" "build-fuzz/seeds/$n" >"$log" 2>&1
  local rc=$?
  set -e
  local execs corpus
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  corpus=$(ls "build-fuzz/corpus/$n" | wc -l)
  if [[ $rc -eq 0 ]]; then
    echo "fuzz $n: ${seconds}s, $execs inputs, corpus $corpus, no finding"
  else
    echo "fuzz $n: FINDING (exit $rc) after $execs inputs; see $log and fuzz/regressions/$n/"
  fi
  return $rc
}

status=0
pids=()
for n in $names; do
  fuzz_one "$n" &
  pids+=($!)
  if [[ ${#pids[@]} -ge $jobs ]]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
