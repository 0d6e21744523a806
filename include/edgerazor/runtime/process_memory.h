// Implements: this process's resident set from /proc/self/status (Linux), and a reset of its
// high-water mark, so that a phase's peak (training after setup, one benchmark step) can be read
// without the peaks of what came before. Torch-free.
#pragma once

namespace edgerazor::runtime {

double resident_mib();       // VmRSS; -1 when not available
double peak_resident_mib();  // VmHWM (since start or the last reset); -1 when not available
// VmHWM := VmRSS (writes 5 to /proc/self/clear_refs, Linux >= 4.0); false when refused.
bool reset_peak_resident();

}  // namespace edgerazor::runtime
