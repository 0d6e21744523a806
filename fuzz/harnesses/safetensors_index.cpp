// model.safetensors.index.json beside one valid shard: the weight map's file names and tensor
// names (missing shards, names a shard lacks, paths leading out of the folder).
#include <filesystem>

#include "edgerazor/io/safetensors.h"
#include "fuzz_support.h"

namespace {
// {"a.weight": F32 [2, 2], "b.bias": BF16 [3]}, as fuzz/make_seeds.py writes it.
std::string valid_shard() {
  const std::string header =
      R"({"a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, )"
      R"("b.bias": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  const uint64_t n = padded.size();
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return file + padded + std::string(22, '\1');
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string shard = edgerazor_fuzz::write_scratch("shard.safetensors", valid_shard());
  const std::string index = edgerazor_fuzz::write_scratch("model.safetensors.index.json", data, size);
  edgerazor_fuzz::expect_clear_errors([&] {
    const auto checkpoint = edgerazor::io::SafetensorsCheckpoint::open(index);
    for (const auto& name : checkpoint.names()) {
      const auto located = checkpoint.find(name);
      if (!located) std::abort();  // names() lists it: find must too
      const auto canonical = std::filesystem::weakly_canonical(located->file->path());
      if (canonical.parent_path() != std::filesystem::weakly_canonical(edgerazor_fuzz::scratch_dir())) {
        std::fprintf(stderr, "the index reached a file outside its folder: %s\n", canonical.c_str());
        std::abort();
      }
    }
  });
  (void)shard;
  return 0;
}
