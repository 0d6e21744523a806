// Implements: turning text and JSONL into token-shard documents with label masks, through any
// text::Tokenizer (SentencePiece, Hugging Face BPE) and, for chat data, the model's chat
// template. Torch-free; edgerazor-data is a thin shell over these functions.
//
// Documents and labels (1 = the token carries a loss label):
//   plain text / {"text": s}          [BOS] tokens(s) EOS                        all 1
//   {"prompt": p, "response": r}      [BOS] tokens(p) tokens(r) EOS              0 on [BOS] p, 1 on r EOS
//     ("completion" is accepted for "response"; p and r are tokenized separately, so the
//      boundary is exact)
//   {"messages": [{role, content}]}   tokens(render_chat(messages)) EOS          1 on assistant replies
//     (text::tokenize_chat spans) and EOS, 0 elsewhere; an optional system prompt is prepended
//     when the conversation has none (the reference always adds "You are a helpful and harmless
//     AI assistant.", spec §9.2); no BOS is added, templates write their own.
// EOS is appended after every document (the separator for packing) unless disabled.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "edgerazor/data/shard.h"
#include "edgerazor/text/chat_template.h"
#include "edgerazor/text/tokenizer.h"

namespace edgerazor::data {

// How a text file is cut into documents.
enum class DocumentSplit {
  kNone,       // the whole file is one document
  kLine,       // one document per non-blank line
  kBlankLine,  // documents separated by one or more blank (whitespace-only) lines
  kSeparator,  // documents separated by a separator string (default "<|endoftext|>")
  kAuto,       // kSeparator when the text contains the separator, else kBlankLine
};
// "none", "line", "blank-line", "separator", "auto"; ConfigError (key `key`) otherwise.
DocumentSplit parse_document_split(const std::string& name, const std::string& key = "--split");

// Documents of `text`, each stripped of surrounding whitespace lines (kNone keeps the text as
// is); empty documents are dropped.
std::vector<std::string> split_documents(const std::string& text, DocumentSplit split,
                                         const std::string& separator = "<|endoftext|>");

// How a {"prompt", "response"} record becomes one document.
enum class PromptFormat {
  kAuto,   // kChat when the tokenizer has a chat template, else kPlain
  kChat,   // a user turn (the prompt) and an assistant turn (the response), as {"messages"} records
  kPlain,  // prompt + prompt_separator + response, as text
};
// "auto", "chat", "plain" (ConfigError naming `key` otherwise).
PromptFormat parse_prompt_format(const std::string& name, const std::string& key);

struct EncodeOptions {
  bool bos = false;       // prepend the tokenizer's BOS (text and prompt/response documents)
  bool eos = true;        // append EOS after every document
  int32_t eos_id = -1;    // -1 = the tokenizer's EOS
  std::string system_prompt;  // chat: prepended as a system message when none is present
  const text::ChatTemplate* chat_template = nullptr;  // needed for {"messages"} records
  PromptFormat prompt_format = PromptFormat::kAuto;
  std::string prompt_separator = "\n";  // kPlain: between prompt and response (unlabelled)
};

struct EncodedDocument {
  std::vector<int32_t> ids;
  std::vector<uint8_t> labels;  // one per id, 1 = carries a loss label
};

struct EncodeStats {
  uint64_t documents = 0, tokens = 0, label_tokens = 0;
  uint64_t text_records = 0, prompt_records = 0, chat_records = 0;  // JSONL kinds
};

// The EOS id EncodeOptions resolves to; ConfigError when eos is on and there is none.
int32_t resolve_eos_id(const text::Tokenizer& tokenizer, const EncodeOptions& options);

// One plain-text document.
EncodedDocument encode_text_document(const text::Tokenizer& tokenizer, const std::string& text, const EncodeOptions& options);
// One JSONL record (the JSON object text). Throws FormatError(source, byte_offset, "line N: ...")
// when the record is malformed; `source`, `line` and `byte_offset` only name the place.
EncodedDocument encode_jsonl_record(const text::Tokenizer& tokenizer, const std::string& json, const EncodeOptions& options,
                                    const std::string& source = "<record>", uint64_t line = 1, uint64_t byte_offset = 0,
                                    EncodeStats* stats = nullptr);

// Whole inputs into a writer (which must have label_mask on for JSONL with prompts or chats).
EncodeStats encode_text(const text::Tokenizer& tokenizer, const std::string& text, DocumentSplit split,
                        const std::string& separator, const EncodeOptions& options, ShardWriter& writer);
EncodeStats encode_jsonl(const text::Tokenizer& tokenizer, std::istream& in, const std::string& source,
                         const EncodeOptions& options, ShardWriter& writer);

}  // namespace edgerazor::data
