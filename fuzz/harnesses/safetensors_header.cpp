// safetensors: the 8-byte length, the JSON header, offsets against the file size; then every
// tensor's bytes are read, so an offset the reader let through would show as an ASan report.
#include "edgerazor/io/safetensors.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = edgerazor_fuzz::write_scratch("model.safetensors", data, size);
  edgerazor_fuzz::expect_clear_errors([&] {
    const auto file = edgerazor::io::SafetensorsFile::open(path);
    volatile uint8_t sum = 0;
    for (const auto& t : file->tensors()) {
      const uint8_t* bytes = file->data(t);
      for (uint64_t i = 0; i < t.nbytes(); i += 97) sum += bytes[i];
      if (t.nbytes() > 0) sum += bytes[t.nbytes() - 1];
      (void)t.numel();
    }
  });
  return 0;
}
