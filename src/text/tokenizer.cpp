// Tokenizer factories: a Hugging Face tokenizer.json, or a model folder (tokenizer.json when it
// is a byte-level BPE we implement, else tokenizer.model through load_sentencepiece_model).
#include "edgerazor/text/tokenizer.h"

#include <sys/stat.h>

#include "bpe_internal.h"
#include "edgerazor/core/error.h"
#include "edgerazor/text/bpe_tokenizer.h"
#include "edgerazor/text/chat_template.h"

namespace edgerazor::text {
namespace {

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json) {
  const std::string config = parent_dir(tokenizer_json) + "/tokenizer_config.json";
  return BpeTokenizer::from_files(tokenizer_json, is_file(config) ? config : std::string());
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir) {
  const std::string dir = model_dir.size() > 1 && model_dir.back() == '/' ? model_dir.substr(0, model_dir.size() - 1) : model_dir;
  const std::string hf = dir + "/tokenizer.json", sp = dir + "/tokenizer.model";
  if (is_file(hf)) {
    try {
      return load_hf_tokenizer(hf);
    } catch (const detail::UnsupportedTokenizerError&) {
      // A SentencePiece-style tokenizer.json (Llama 2, Mistral) ships its tokenizer.model too.
      if (!is_file(sp)) throw;
    }
  }
  if (is_file(sp)) return load_sentencepiece_model(sp);
  throw FormatError(model_dir, "no tokenizer: neither tokenizer.json nor tokenizer.model is in this folder");
}

std::string load_chat_template_source(const std::string& model_dir) {
  const std::optional<ChatTemplate> found = ChatTemplate::find_in_model_dir(model_dir);
  return found ? found->source() : std::string();
}

}  // namespace edgerazor::text
