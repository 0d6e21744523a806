// The CPU autocast state, across libtorch versions (2.4 replaced the per-device functions).
// Custom autograd functions that run their own ops (row-fused loss, recomputed attention) cast
// their inputs to this dtype themselves and run with autocast excluded, so that backward, which
// runs without autocast, recomputes exactly what forward computed.
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>

namespace edgerazor::runtime {

// The dtype CPU autocast runs matmuls in, or nullopt when CPU autocast is off.
c10::optional<at::ScalarType> cpu_autocast_dtype();

}  // namespace edgerazor::runtime
