// Included by every source that splits a loop with at::parallel_for. LibTorch's OpenMP build keeps
// that loop's parallel body inline in its headers, under #ifdef _OPENMP: a file compiled without
// -fopenmp gets a serial loop, silently (the fused AdamW and the row-fused loss ran on one thread
// that way). CMakeLists.txt compiles these files with OpenMP (EDGERAZOR_OPENMP_SOURCES).
#pragma once

#include <ATen/Config.h>

#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "this file uses at::parallel_for: add it to EDGERAZOR_OPENMP_SOURCES in CMakeLists.txt (else it runs serially)"
#endif
