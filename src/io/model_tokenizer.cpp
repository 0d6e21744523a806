// Model-folder tokenizer with an out-of-process SentencePiece encoder (see the header).
#include "edgerazor/io/model_tokenizer.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "edgerazor/core/error.h"
#include "edgerazor/io/token_file.h"
#include "edgerazor/text/sentencepiece_model.h"

namespace edgerazor::io {
namespace fs = std::filesystem;

namespace {

// Decodes in process, encodes through edgerazor-data.
class SubprocessEncodingTokenizer : public text::Tokenizer {
 public:
  SubprocessEncodingTokenizer(std::unique_ptr<text::Tokenizer> inner, std::string model_file, std::string tool)
      : inner_(std::move(inner)), model_file_(std::move(model_file)), tool_(std::move(tool)) {}
  std::vector<int32_t> encode(const std::string& text) const override {
    return encode_with_data_tool(tool_, model_file_, text);
  }
  std::string decode(const std::vector<int32_t>& ids) const override { return inner_->decode(ids); }
  std::string id_to_piece(int32_t id) const override { return inner_->id_to_piece(id); }
  int64_t vocab_size() const override { return inner_->vocab_size(); }
  std::optional<int32_t> bos_id() const override { return inner_->bos_id(); }
  std::optional<int32_t> eos_id() const override { return inner_->eos_id(); }
  std::optional<int32_t> pad_id() const override { return inner_->pad_id(); }
  bool add_bos_by_default() const override { return inner_->add_bos_by_default(); }
  std::string kind() const override { return inner_->kind(); }

 private:
  std::unique_ptr<text::Tokenizer> inner_;
  std::string model_file_, tool_;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string default_data_tool() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path beside = self.parent_path() / "edgerazor-data";
    if (fs::exists(beside)) return beside.string();
  }
  return "edgerazor-data";
}

std::vector<int32_t> encode_with_data_tool(const std::string& tool, const std::string& tokenizer_model,
                                           const std::string& text) {
  char dir_template[] = "/tmp/edgerazor-encode-XXXXXX";
  if (!::mkdtemp(dir_template)) throw std::runtime_error("cannot create a temporary folder for edgerazor-data");
  const fs::path dir(dir_template);
  const fs::path in = dir / "text.txt", out = dir / "tokens.bin";
  try {
    {
      std::ofstream f(in, std::ios::binary);
      f << text;
    }
    const std::string cmd = shell_quote(tool) + " encode --tokenizer " + shell_quote(tokenizer_model) + " --in " +
                            shell_quote(in.string()) + " --out " + shell_quote(out.string()) + " 2>/dev/null";
    const int status = std::system(cmd.c_str());
    if (status != 0 || !fs::exists(out))
      throw std::runtime_error("tokenizing through '" + tool + "' failed (exit status " +
                               std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                               "); is edgerazor-data built and on PATH?");
    auto ids = read_token_file(out.string());
    fs::remove_all(dir);
    return ids;
  } catch (...) {
    fs::remove_all(dir);
    throw;
  }
}

std::unique_ptr<text::Tokenizer> load_model_tokenizer(const std::string& model_dir, const ModelTokenizerOptions& o) {
  auto tok = text::load_tokenizer(model_dir);
  const fs::path sp_file = fs::path(model_dir) / "tokenizer.model";
  if (tok->kind() != "sentencepiece" || !fs::exists(sp_file)) return tok;
  const auto* sp = dynamic_cast<const text::SentencePieceTokenizer*>(tok.get());
  if (!o.force_subprocess && sp && sp->can_encode()) return tok;
  return std::make_unique<SubprocessEncodingTokenizer>(std::move(tok), sp_file.string(),
                                                       o.data_tool.empty() ? default_data_tool() : o.data_tool);
}

}  // namespace edgerazor::io
