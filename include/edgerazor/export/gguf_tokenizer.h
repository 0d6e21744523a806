// Implements: the tokenizer.ggml.* metadata of a GGUF file from a model folder's tokenizer,
// as llama.cpp reads it (spec formats-and-peers.md §2.2). Torch-free.
//
//   SentencePiece (tokenizer.model; Llama 2, MobileLLM, stories260K): model "llama", pre
//     "default", tokens, scores (FLOAT32[]), token_type (INT32[]: 1 normal, 2 unknown, 3 control,
//     4 user-defined, 5 unused, 6 byte), bos/eos/unk(/padding) ids (UINT32), add_bos_token true.
//   Byte-level BPE (tokenizer.json; Qwen2/Qwen3): model "gpt2", pre from the pre-tokenizer regex
//     ("qwen2", "llama-bpe", "gpt-2"), tokens in byte-level form, token_type, merges ("a b"),
//     eos/padding/bos ids, add_bos_token as the tokenizer says (false for Qwen), chat_template.
// Either way the token list is padded to the model's vocab_size with "[PAD<id>]" (type unused),
// as convert_hf_to_gguf.py does, because llama.cpp requires one token per embedding row.
#pragma once

#include <string>
#include <vector>

#include "edgerazor/export/gguf.h"
#include "edgerazor/model/model_config.h"

namespace edgerazor::exporter {

// Adds the tokenizer keys for the tokenizer in dir (tokenizer.json preferred, else
// tokenizer.model). Throws FormatError when dir has neither or the vocabulary is larger than
// the model's. Warnings (e.g. an unknown pre-tokenizer) are appended to warnings.
void add_tokenizer_metadata(GgufWriter& writer, const std::string& dir, const model::ModelConfig& config,
                            std::vector<std::string>& warnings);

// The llama.cpp pre-tokenizer name for a list of Split regexes, "" when unknown.
std::string gguf_pre_tokenizer_name(const std::vector<std::string>& patterns);

}  // namespace edgerazor::exporter
