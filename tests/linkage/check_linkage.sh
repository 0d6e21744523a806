#!/bin/sh
# What the executables load (ldd): LibTorch 2.x with its CUDA libraries and NCCL when LibTorch has
# CUDA, one CUDA runtime and it the wheel's (never the toolkit's under /usr/local/cuda), and no
# Debian libgloo (its headers are used, its library never). Also that edgerazor-data, which links
# sentencepiece, loads no LibTorch. One libgomp (LibTorch's OpenMP runtime, which the library's own
# parallel loops use too).
#   check_linkage.sh BIN_DIR EXPECT_CUDA(0|1)
set -eu
bin="$1"
expect_cuda="$2"
fail() { echo "check_linkage: $*" >&2; exit 1; }
libs="$(ldd "$bin/edgerazor-train")"
echo "$libs" | grep -E 'torch|c10|cuda|nccl|cublas|gloo'
echo "$libs" | grep -q 'libtorch_cpu.so' || fail "edgerazor-train does not load libtorch_cpu.so"
echo "$libs" | grep -q 'not found' && fail "edgerazor-train has unresolved libraries"
echo "$libs" | grep -q 'libgloo' && fail "edgerazor-train loads a separate libgloo"
if [ "$expect_cuda" = 1 ]; then
  for lib in libtorch_cuda.so libc10_cuda.so libcudart.so libnccl.so libcublas.so; do
    echo "$libs" | grep -q "$lib" || fail "edgerazor-train does not load $lib"
  done
  [ "$(echo "$libs" | grep -c 'libcudart.so')" = 1 ] || fail "more than one CUDA runtime"
  echo "$libs" | grep 'libcudart.so' | grep -q '/usr/local/cuda' && fail "the toolkit's CUDA runtime, not the wheel's"
fi
# One OpenMP runtime: the library's own parallel loops share LibTorch's libgomp and its threads.
[ "$(echo "$libs" | grep -c 'libgomp')" -le 1 ] || fail "more than one OpenMP runtime (libgomp) is loaded"
ldd "$bin/edgerazor-data" | grep -q 'libtorch' && fail "edgerazor-data loads LibTorch (it links sentencepiece)"
echo "check_linkage: ok"
