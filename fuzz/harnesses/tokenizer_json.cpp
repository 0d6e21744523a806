// tokenizer.json (Hugging Face BPE): model, vocab, merges, added tokens, pre-tokenizer regexes,
// normalizers; a tokenizer that loads must encode and decode text with special tokens, Unicode
// and invalid UTF-8 in it, and only give back ids below its vocabulary size.
#include "edgerazor/text/tokenizer.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = edgerazor_fuzz::write_scratch("tokenizer.json", data, size);
  edgerazor_fuzz::expect_clear_errors([&] {
    const auto tokenizer = edgerazor::text::load_hf_tokenizer(path);
    static const std::string sample =
        "Once upon a time, <|endoftext|> a cat said \"héllo\" 123 \xe4\xbd\xa0\xe5\xa5\xbd \n\n\t "
        "<|im_start|>user\n\xff\xfe bad bytes\xc3<|im_end|>  end";
    const auto ids = tokenizer->encode(sample);
    const int64_t vocab = tokenizer->vocab_size();
    for (const int32_t id : ids)
      if (id < 0 || id >= vocab) {
        std::fprintf(stderr, "encode gave id %d outside the vocabulary of %lld\n", id, static_cast<long long>(vocab));
        std::abort();
      }
    (void)tokenizer->decode(ids);
    (void)tokenizer->decode({0, 1, 2, static_cast<int32_t>(vocab - 1)});
    for (int32_t id = 0; id < vocab && id < 64; ++id) (void)tokenizer->id_to_piece(id);
  });
  return 0;
}
