// Training YAML: every section and key, presets, anchors and merges, duplicate keys; what parses
// must validate and print back (to_yaml) as text that parses to the same config.
#include "edgerazor/config/train_config.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  edgerazor_fuzz::expect_clear_errors([&] {
    const auto config = edgerazor::config::parse_train_config(text, "fuzz.yaml", {}, /*check_files=*/false);
    edgerazor::config::validate(config);
    const std::string resolved = edgerazor::config::to_yaml(config);
    const auto again = edgerazor::config::parse_train_config(resolved, "fuzz-resolved.yaml", {}, false);
    if (edgerazor::config::to_yaml(again) != resolved) {
      std::fprintf(stderr, "to_yaml does not round-trip:\n%s\n", resolved.c_str());
      std::abort();
    }
  });
  return 0;
}
