// Implements: resident-set readings (see edgerazor/runtime/process_memory.h).
#include "edgerazor/runtime/process_memory.h"

#include <fstream>
#include <string>

namespace edgerazor::runtime {
namespace {
double status_mib(const std::string& key) {  // "VmRSS:" / "VmHWM:" lines are in kB
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  return -1.0;
}
}  // namespace

double resident_mib() { return status_mib("VmRSS:"); }
double peak_resident_mib() { return status_mib("VmHWM:"); }

bool reset_peak_resident() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace edgerazor::runtime
