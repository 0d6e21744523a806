# Sourced by setup.sh, build.sh and the tests' reference installer: the one place that pins
# the LibTorch the project builds against (the PyPI torch wheel; its default Linux build is
# CUDA 13, the major version of the toolkit on our machines, so one CUDA runtime is loaded).
EDGERAZOR_TORCH_VERSION=2.15.0
EDGERAZOR_NUMPY_VERSION=2.3.5
# A usable environment: the pinned torch imports and reports the pinned version.
EDGERAZOR_TORCH_CHECK="import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$EDGERAZOR_TORCH_VERSION')"
