// The tokenizer of a model folder for processes that link torch: text::load_tokenizer(), and for
// SentencePiece models our own encoder cannot reproduce (unigram, nmt_nfkc normalization),
// encoding through a separate `edgerazor-data` process (the only binary that links
// libsentencepiece; DESIGN.md "Tokenizer isolation"). Decoding always stays in process.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "edgerazor/text/tokenizer.h"

namespace edgerazor::io {

struct ModelTokenizerOptions {
  // Encode through edgerazor-data even when the in-process encoder could (tests, debugging).
  bool force_subprocess = false;
  // edgerazor-data to run; empty: the one beside the running executable, else from PATH.
  std::string data_tool;
};

std::unique_ptr<text::Tokenizer> load_model_tokenizer(const std::string& model_dir,
                                                      const ModelTokenizerOptions& options = {});

// Runs `edgerazor-data encode` on text and returns the ids (no BOS/EOS added).
std::vector<int32_t> encode_with_data_tool(const std::string& data_tool, const std::string& tokenizer_model,
                                           const std::string& text);

// The edgerazor-data binary beside /proc/self/exe, or "edgerazor-data" (PATH) when absent.
std::string default_data_tool();

}  // namespace edgerazor::io
