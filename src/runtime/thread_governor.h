// Internal to src/runtime: the state behind adapt_threads() (edgerazor/runtime/runtime.h).
#pragma once

namespace edgerazor::runtime::detail {

// The library chose the thread count (`cores` of them): adapt_threads() may change it.
void governor_enable(int cores);
// The user chose it (--threads, set_threads): leave it alone from now on.
void governor_disable();

}  // namespace edgerazor::runtime::detail
