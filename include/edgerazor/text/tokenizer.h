// One interface for every tokenizer EdgeRazor reads. Torch-free and protobuf-free, so both the
// torch tools and edgerazor-data can use it.
//
// Implementations:
//   - SentencePiece .model files (Llama/MobileLLM, stories260K): the piece table is read from
//     the protobuf by our own small parser (libsentencepiece must not share a process with
//     libtorch; see DESIGN.md "Tokenizer isolation").
//   - Hugging Face tokenizer.json byte-level BPE (Qwen2/Qwen3), with tokenizer_config.json.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace edgerazor::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids. Adds no BOS/EOS; callers decide (see add_bos_by_default()).
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  // Ids -> text (invalid UTF-8 replaced by U+FFFD, like Hugging Face errors="replace").
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The raw piece/token string of one id, as stored in the vocabulary.
  virtual std::string id_to_piece(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;

  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::optional<int32_t> pad_id() const = 0;
  // Whether the model family expects a BOS token at the start of each sequence.
  virtual bool add_bos_by_default() const = 0;
  // "sentencepiece" or "bpe" (for GGUF export and logs).
  virtual std::string kind() const = 0;
};

// A SentencePiece .model file.
std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& model_file);
// A Hugging Face tokenizer.json (+ tokenizer_config.json beside it when present).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json);
// A model folder: tokenizer.json when present, else tokenizer.model. Throws FormatError naming
// the folder when neither exists.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

// The Jinja chat template of a model folder (chat_template.jinja, else tokenizer_config.json's
// chat_template), or "" when it has none. Parses it, so a broken template throws
// jinja::TemplateError here. Rendering: edgerazor/text/chat_template.h.
std::string load_chat_template_source(const std::string& model_dir);

}  // namespace edgerazor::text
