// tokenizer.ggml.* metadata from SentencePiece models and Hugging Face tokenizer.json. Torch-free.
#include "edgerazor/export/gguf_tokenizer.h"

#include <filesystem>

#include "edgerazor/core/error.h"
#include "edgerazor/text/bpe_tokenizer.h"
#include "edgerazor/text/sentencepiece_model.h"

namespace edgerazor::exporter {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kUnusedType = 5;

void check_vocab(size_t n_tokens, const model::ModelConfig& config, const std::string& file) {
  if (static_cast<int64_t>(n_tokens) > config.vocab_size)
    throw FormatError(file, "tokenizer has " + std::to_string(n_tokens) + " tokens but the model's vocab_size is " +
                                std::to_string(config.vocab_size));
}

void pad_tokens(std::vector<std::string>& tokens, std::vector<int64_t>& types, std::vector<double>* scores, int64_t vocab) {
  for (int64_t i = static_cast<int64_t>(tokens.size()); i < vocab; ++i) {
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    types.push_back(kUnusedType);
    if (scores) scores->push_back(0.0);
  }
}

void add_sentencepiece(GgufWriter& w, const std::string& file, const model::ModelConfig& config) {
  const text::SentencePieceModel sp = text::read_sentencepiece_model(file);
  check_vocab(sp.pieces.size(), config, file);
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  std::vector<double> scores;
  for (const auto& p : sp.pieces) {
    tokens.push_back(p.piece);
    types.push_back(static_cast<int64_t>(p.type));
    scores.push_back(p.score);
  }
  pad_tokens(tokens, types, &scores, config.vocab_size);
  w.set("tokenizer.ggml.model", GgufValue::string("llama"));
  w.set("tokenizer.ggml.pre", GgufValue::string("default"));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
  w.set("tokenizer.ggml.scores", GgufValue::f32_array(std::move(scores)));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(std::move(types)));
  if (sp.bos_id >= 0) w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(sp.bos_id)));
  if (sp.eos_id >= 0) w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(sp.eos_id)));
  if (sp.unk_id >= 0) w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(static_cast<uint32_t>(sp.unk_id)));
  if (sp.pad_id >= 0) w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(static_cast<uint32_t>(sp.pad_id)));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(sp.bos_id >= 0));
  w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(false));
}

void add_bpe(GgufWriter& w, const std::string& json_file, const std::string& config_file, const model::ModelConfig& config,
             std::vector<std::string>& warnings) {
  const auto tok = text::BpeTokenizer::from_files(json_file, fs::exists(config_file) ? config_file : std::string());
  check_vocab(tok->tokens().size(), config, json_file);
  std::vector<std::string> tokens = tok->tokens();
  std::vector<int64_t> types;
  for (auto t : tok->token_types()) types.push_back(static_cast<int64_t>(t));
  pad_tokens(tokens, types, nullptr, config.vocab_size);
  std::string pre = gguf_pre_tokenizer_name(tok->pre_tokenizer_patterns());
  if (pre.empty()) {
    warnings.push_back(json_file + ": unknown pre-tokenizer regex; writing tokenizer.ggml.pre \"default\", "
                                   "llama.cpp may split text differently");
    pre = "default";
  }
  w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::string(pre));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(std::move(types)));
  w.set("tokenizer.ggml.merges", GgufValue::string_array(tok->merges()));
  // convert_hf_to_gguf's SpecialVocab: tokenizer_config first, config.json for what it lacks.
  auto id = [](std::optional<int32_t> a, std::optional<int64_t> b) -> std::optional<int64_t> {
    if (a) return *a;
    return b;
  };
  const auto bos = id(tok->bos_id(), config.bos_token_id);
  const auto eos = id(tok->eos_id(), config.eos_token_ids.empty() ? std::nullopt : std::optional<int64_t>(config.eos_token_ids[0]));
  const auto pad = id(tok->pad_id(), config.pad_token_id);
  if (bos) w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(*bos)));
  if (eos) w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(*eos)));
  if (pad) w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(static_cast<uint32_t>(*pad)));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(tok->add_bos_by_default()));
  if (!tok->chat_template().empty()) w.set("tokenizer.chat_template", GgufValue::string(tok->chat_template()));
}

}  // namespace

std::string gguf_pre_tokenizer_name(const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    const bool contractions_ci = p.find("(?i:'s|'t|'re|'ve|'m|'ll|'d)") != std::string::npos;
    if (contractions_ci && p.find("\\p{N}{1,3}") != std::string::npos) return "llama-bpe";
    if (contractions_ci && p.find("|\\p{N}|") != std::string::npos) return "qwen2";
    if (p.find("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+") != std::string::npos) return "gpt-2";
  }
  return "";
}

void add_tokenizer_metadata(GgufWriter& w, const std::string& dir, const model::ModelConfig& config,
                            std::vector<std::string>& warnings) {
  const fs::path d = dir;
  if (fs::exists(d / "tokenizer.json")) return add_bpe(w, (d / "tokenizer.json").string(), (d / "tokenizer_config.json").string(), config, warnings);
  if (fs::exists(d / "tokenizer.model")) return add_sentencepiece(w, (d / "tokenizer.model").string(), config);
  throw FormatError(dir, "no tokenizer.json or tokenizer.model: a GGUF file needs the tokenizer");
}

}  // namespace edgerazor::exporter
