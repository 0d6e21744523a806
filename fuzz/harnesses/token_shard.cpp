// Token shards (.bin, versions 1 and 2): header fields, label mask, document table; a shard that
// opens must be readable everywhere its header says, the way the loader reads it.
#include <vector>

#include "edgerazor/data/shard.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = edgerazor_fuzz::write_scratch("tokens.bin", data, size);
  edgerazor_fuzz::expect_clear_errors([&] { (void)edgerazor::data::read_shard_info(path); });
  edgerazor_fuzz::expect_clear_errors([&] {
    const edgerazor::data::ShardReader shard(path);
    (void)shard.verify_token_ids();
    const uint64_t labelled = shard.count_label_tokens();
    if (labelled > shard.size()) std::abort();
    const uint64_t n = shard.size() < 64 ? shard.size() : 64;
    std::vector<int64_t> ids(n), labels(n);
    shard.copy_tokens(shard.size() - n, shard.size(), ids.data());
    shard.copy_labels(shard.size() - n, shard.size(), labels.data(), ids.data());
    uint64_t previous = 0;
    for (uint64_t d = 0; d <= shard.documents(); ++d) {
      const uint64_t begin = shard.document_begin(d);
      if (begin < previous || begin > shard.size()) {
        std::fprintf(stderr, "document %llu begins at %llu\n", static_cast<unsigned long long>(d),
                     static_cast<unsigned long long>(begin));
        std::abort();
      }
      previous = begin;
    }
  });
  return 0;
}
