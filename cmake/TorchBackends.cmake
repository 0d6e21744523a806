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
get_filename_component(_er_wheel_nvidia "${TORCH_INSTALL_PREFIX}/../nvidia" ABSOLUTE)

# The CUDA runtime comes from the wheel (cmake/EdgeRazorTorchRuntime.cmake says why); TorchConfig
# also adds NVRTC for JIT users, which we never call and whose toolkit copy is another version.
include(${CMAKE_CURRENT_LIST_DIR}/EdgeRazorTorchRuntime.cmake)
if(EDGERAZOR_WHEEL_CUDART)
  message(STATUS "EdgeRazor: CUDA runtime from the torch wheel: ${EDGERAZOR_WHEEL_CUDART}")
endif()
set(EDGERAZOR_TORCH_LIBRARIES ${TORCH_LIBRARIES})
if(EDGERAZOR_TORCH_CUDA)
  list(FILTER EDGERAZOR_TORCH_LIBRARIES EXCLUDE REGEX "libnvrtc")
endif()

# Gloo: torch_cpu defines USE_C10D_GLOO when LibTorch has it; ProcessGroupGloo.hpp then includes
# <gloo/...>, which neither the wheel nor the official zip ships. Only the declarations are
# needed (LibTorch carries the Gloo code itself); see src/distributed/process_group.cpp.
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
