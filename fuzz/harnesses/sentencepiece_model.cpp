// SentencePiece .model protobuf (our own reader: pieces, scores, types, trainer/normalizer
// specs); a model that parses must encode (when it can) and decode without another error.
#include "edgerazor/text/sentencepiece_model.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  edgerazor_fuzz::expect_clear_errors([&] {
    const auto model = edgerazor::text::parse_sentencepiece_model(bytes, "fuzz.model");
    edgerazor::text::SentencePieceTokenizer tokenizer(model);
    const int64_t vocab = tokenizer.vocab_size();
    if (tokenizer.can_encode()) {
      const auto ids = tokenizer.encode("Once upon a time, a little cat \xe4\xbd\xa0\xe5\xa5\xbd 42 \xff end.");
      for (const int32_t id : ids)
        if (id < 0 || id >= vocab) std::abort();
      (void)tokenizer.decode(ids);
    }
    if (vocab > 0) (void)tokenizer.decode({0, static_cast<int32_t>(vocab - 1)});
  });
  return 0;
}
