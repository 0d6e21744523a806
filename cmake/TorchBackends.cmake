# After find_package(Torch): what this LibTorch was built with, and the headers our c10d code
# needs that LibTorch does not ship.
#
# Sets EDGERAZOR_TORCH_CUDA (LibTorch has CUDA), EDGERAZOR_GLOO_INCLUDE_DIR and
# EDGERAZOR_NCCL_INCLUDE_DIR (empty when that backend is not built into LibTorch), and
# EDGERAZOR_TORCH_LIBRARIES (TORCH_LIBRARIES with the CUDA runtime taken from the wheel).

set(EDGERAZOR_TORCH_CUDA OFF)
if(TARGET torch_cuda OR TARGET torch_cuda_library)
  set(EDGERAZOR_TORCH_CUDA ON)
endif()

# TORCH_INSTALL_PREFIX is the torch package folder; a PyPI wheel keeps the CUDA libraries it was
# built with beside it, in site-packages/nvidia/.
get_filename_component(_er_site_packages "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
set(_er_wheel_nvidia "${_er_site_packages}/nvidia")

# One CUDA runtime per process. CMake's FindCUDAToolkit points CUDA::cudart at the installed
# toolkit (13.0 here) while the wheel's libtorch_cuda loads its own (13.2, through its RPATH):
# whichever the executable names first would win for both. Link the wheel's copy instead, so the
# runtime LibTorch was built against is the one loaded. We compile no CUDA kernels of our own,
# so nothing here needs the toolkit's runtime.
set(EDGERAZOR_TORCH_LIBRARIES ${TORCH_LIBRARIES})
if(EDGERAZOR_TORCH_CUDA AND EXISTS "${_er_wheel_nvidia}")
  file(GLOB _er_wheel_cudart "${_er_wheel_nvidia}/cu*/lib/libcudart.so.*")
  if(_er_wheel_cudart AND TARGET CUDA::cudart)
    list(GET _er_wheel_cudart 0 _er_wheel_cudart)
    set_target_properties(CUDA::cudart PROPERTIES IMPORTED_LOCATION "${_er_wheel_cudart}")
    message(STATUS "EdgeRazor: CUDA runtime from the torch wheel: ${_er_wheel_cudart}")
  endif()
  # TorchConfig adds NVRTC for JIT users; we never call it, and the toolkit's copy is another
  # version than the wheel's.
  list(FILTER EDGERAZOR_TORCH_LIBRARIES EXCLUDE REGEX "libnvrtc")
endif()

# Gloo: torch_cpu defines USE_C10D_GLOO when LibTorch has it; ProcessGroupGloo.hpp then includes
# <gloo/...>, which neither the wheel nor the official zip ships. Only the declarations are
# needed (LibTorch carries the Gloo code itself); see src/distributed/gloo_backend.cpp.
get_target_property(_er_cpu_defs torch_cpu INTERFACE_COMPILE_DEFINITIONS)
if(_er_cpu_defs MATCHES "USE_C10D_GLOO")
  find_path(EDGERAZOR_GLOO_INCLUDE_DIR gloo/rendezvous/store.h
            HINTS "${TORCH_INSTALL_PREFIX}/include" DOC "folder holding gloo/ (Debian: libgloo-dev)")
  if(NOT EDGERAZOR_GLOO_INCLUDE_DIR)
    message(FATAL_ERROR "LibTorch was built with Gloo but the Gloo headers are missing: install "
                        "libgloo-dev (scripts/setup.sh does) or set EDGERAZOR_GLOO_INCLUDE_DIR")
  endif()
else()
  set(EDGERAZOR_GLOO_INCLUDE_DIR "")
  message(WARNING "EdgeRazor: this LibTorch has no Gloo: multi-process training on CPU is unavailable")
endif()

# NCCL: torch_cuda defines USE_C10D_NCCL; ProcessGroupNCCL.hpp includes <nccl.h>. Prefer the
# header of the NCCL the wheel loads (nvidia/nccl), then the toolkit's.
if(TARGET torch_cuda)
  get_target_property(_er_cuda_defs torch_cuda INTERFACE_COMPILE_DEFINITIONS)
  if(_er_cuda_defs MATCHES "USE_C10D_NCCL")
    find_path(EDGERAZOR_NCCL_INCLUDE_DIR nccl.h
              HINTS "${_er_wheel_nvidia}/nccl/include" "${CUDAToolkit_INCLUDE_DIRS}" NO_DEFAULT_PATH)
    if(NOT EDGERAZOR_NCCL_INCLUDE_DIR)
      find_path(EDGERAZOR_NCCL_INCLUDE_DIR nccl.h)
    endif()
    if(NOT EDGERAZOR_NCCL_INCLUDE_DIR)
      message(FATAL_ERROR "LibTorch was built with NCCL but nccl.h was not found: install the "
                          "NCCL headers (pip nvidia-nccl-cu13, or libnccl-dev) or set EDGERAZOR_NCCL_INCLUDE_DIR")
    endif()
  endif()
endif()
if(NOT EDGERAZOR_NCCL_INCLUDE_DIR)
  set(EDGERAZOR_NCCL_INCLUDE_DIR "")
endif()
message(STATUS "EdgeRazor: LibTorch ${Torch_VERSION}, CUDA ${EDGERAZOR_TORCH_CUDA}, "
               "Gloo headers '${EDGERAZOR_GLOO_INCLUDE_DIR}', NCCL headers '${EDGERAZOR_NCCL_INCLUDE_DIR}'")
