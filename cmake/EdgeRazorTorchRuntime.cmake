# One CUDA runtime per process. After find_package(Torch) against a PyPI wheel, CMake's
# FindCUDAToolkit points CUDA::cudart at the installed toolkit (13.0 here) while the wheel's
# libtorch_cuda loads its own (13.2, through its RPATH): whichever an executable names first would
# serve both, and the toolkit's folder in the RUNPATH would also bring the toolkit's NCCL in ahead
# of the wheel's. Point CUDA::cudart at the wheel's copy, so the runtime LibTorch was built
# against is the one linked and loaded. Included by EdgeRazor's own build and by its installed
# package (EdgeRazorConfig.cmake), so programs linking EdgeRazor::edgerazor get the same.
# Sets EDGERAZOR_WHEEL_CUDART (empty when LibTorch is not a wheel with CUDA libraries beside it).
set(EDGERAZOR_WHEEL_CUDART "")
if(TARGET CUDA::cudart AND DEFINED TORCH_INSTALL_PREFIX)
  get_filename_component(_er_site_packages "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
  file(GLOB _er_wheel_cudart "${_er_site_packages}/nvidia/cu*/lib/libcudart.so.*")
  if(_er_wheel_cudart)
    list(GET _er_wheel_cudart 0 EDGERAZOR_WHEEL_CUDART)
    set_target_properties(CUDA::cudart PROPERTIES IMPORTED_LOCATION "${EDGERAZOR_WHEEL_CUDART}")
  endif()
endif()
