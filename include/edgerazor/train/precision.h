// Implements: the trainer's compute precision. `auto` picks bf16 autocast only where bf16 matmuls
// are native (CPU flags avx512_bf16 / amx_bf16, or a CUDA device), fp32 elsewhere: on an AVX2-only
// CPU bf16 is emulated and ~17x slower than fp32 (DESIGN.md "Environment facts").
#pragma once

#include <ATen/core/ATen_fwd.h>

#include <string>

namespace edgerazor::train {

enum class Precision { fp32, bf16 };

inline const char* to_string(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

// True when /proc/cpuinfo lists avx512_bf16 or amx_bf16 (false when it cannot be read).
bool cpu_has_native_bf16();

// "auto" | "bf16" | "fp32" for a device ("cpu", "cuda", "cuda:N"); throws std::invalid_argument
// on another name.
Precision resolve_precision(const std::string& precision, const std::string& device);

// RAII: bf16 autocast on `device_type` for the scope (nothing for fp32). The cast cache is cleared
// when it ends, so weights swapped by QuantizedWeightsScope are never reused stale.
class AutocastScope {
 public:
  AutocastScope(Precision precision, bool cuda);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool previous_enabled_ = false;
  int previous_dtype_ = 0;
};

}  // namespace edgerazor::train
