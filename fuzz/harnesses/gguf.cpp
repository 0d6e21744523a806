// GGUF: header, metadata values (strings, arrays, nesting), tensor infos, alignment and offsets;
// then metadata is printed and small tensors are dequantized (every block read).
#include "edgerazor/export/gguf.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = edgerazor_fuzz::write_scratch("model.gguf", data, size);
  edgerazor_fuzz::expect_clear_errors([&] {
    const auto file = edgerazor::exporter::GgufFile::open(path);
    for (const auto& [key, value] : file->metadata()) (void)value.to_string();
    for (const auto& t : file->tensors())
      if (t.numel() <= (1 << 16)) (void)file->dequantize(t);
  });
  return 0;
}
