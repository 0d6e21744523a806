// edgerazor-data: the tokenizing tool. It links libsentencepiece and therefore never libtorch
// (two protobuf copies crash one process; DESIGN.md "Tokenizer isolation").
//
//   # token shards for training (edgerazor/data/shard.h), EOS after every document:
//   edgerazor-data encode --tokenizer MODEL_DIR --in train.txt --out train.bin --split auto
//   edgerazor-data encode --tokenizer MODEL_DIR --format jsonl --in chat.jsonl --out chat.bin
//   edgerazor-data encode-jsonl --tokenizer MODEL_DIR --in chat.jsonl --out chat.bin   (same)
//   edgerazor-data info train.bin [chat.bin ...] [--json]
//   edgerazor-data decode --tokenizer MODEL_DIR --in chat.bin [--document 3] [--mark-labels]
//   # flat token files (io/token_file.h, what edgerazor-eval --tokens reads): no --split
//   edgerazor-data encode --tokenizer tokenizer.model --in text.txt --out tokens.bin [--bos] [--eos]
//   edgerazor-data encode --tokenizer MODEL_DIR --text "Once upon" --print-ids
//   edgerazor-data decode --tokenizer MODEL_DIR --ids 1,403,407
//
// --tokenizer is a model folder (tokenizer.json, else tokenizer.model), a .model file or a
// tokenizer.json file. SentencePiece models encode through libsentencepiece itself.
// The work is done by edgerazor/data/encode.h and shard.h; this file parses flags.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "edgerazor/core/cli.h"
#include "tool_flags.h"
#include "edgerazor/text/unicode.h"
#include "edgerazor/text/sentencepiece_model.h"
#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"
#include "edgerazor/data/encode.h"
#include "edgerazor/data/shard.h"
#include "edgerazor/io/token_file.h"
#include "edgerazor/text/chat_template.h"
#include "edgerazor/text/tokenizer.h"

namespace {

// "\n", "\t" and "\\" in a flag value (a shell passes them literally).
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[i + 1];
      if (c == 'n' || c == 't' || c == '\\') {
        out += c == 'n' ? '\n' : c == 't' ? '\t' : '\\';
        ++i;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}
namespace fs = std::filesystem;
namespace data = edgerazor::data;
namespace files = edgerazor::files;
namespace text = edgerazor::text;
using edgerazor::ConfigError;
using edgerazor::FormatError;

// libsentencepiece behind the library's Tokenizer interface: the reference encoder for every
// SentencePiece model (our own encoder covers only BPE + identity normalization).
class LibSentencePieceTokenizer final : public text::Tokenizer {
 public:
  explicit LibSentencePieceTokenizer(const std::string& path) {
    const auto status = sp_.Load(path);
    if (!status.ok()) throw FormatError(path, "cannot load SentencePiece model: " + status.ToString());
    // EDGERAZOR_SENTENCEPIECE_CHUNKS=0 encodes long texts whole (the reference the cut is tested against).
    if (const char* env = std::getenv("EDGERAZOR_SENTENCEPIECE_CHUNKS"); env && std::string(env) == "0") no_chunks_ = true;
    try {  // our own reader of the model file: libsentencepiece does not expose its normalizer spec
      add_dummy_prefix_ = text::read_sentencepiece_model(path).add_dummy_prefix;
    } catch (const std::exception&) {
      no_chunks_ = true;  // a model our reader does not know: encode whole, as before
    }
  }
  std::vector<int32_t> encode(const std::string& s) const override {
    std::vector<int32_t> out;
    const size_t chunk = no_chunks_ ? s.size() + 1 : text::kSentencePieceChunkBytes;
    for (const auto piece : text::sentencepiece_chunks(s, chunk, add_dummy_prefix_)) {
      std::vector<int> ids;
      const auto status = sp_.Encode(std::string(piece), &ids);
      if (!status.ok()) throw std::runtime_error("encoding failed: " + status.ToString());
      out.insert(out.end(), ids.begin(), ids.end());
    }
    return out;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    const auto status = sp_.Decode(std::vector<int>(ids.begin(), ids.end()), &out);
    if (!status.ok()) throw std::runtime_error("decoding failed: " + status.ToString());
    return out;
  }
  std::string id_to_piece(int32_t id) const override { return sp_.IdToPiece(id); }
  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::optional<int32_t> bos_id() const override { return id_or_none(sp_.bos_id()); }
  std::optional<int32_t> eos_id() const override { return id_or_none(sp_.eos_id()); }
  std::optional<int32_t> pad_id() const override { return id_or_none(sp_.pad_id()); }
  bool add_bos_by_default() const override { return sp_.bos_id() >= 0; }
  std::string kind() const override { return "sentencepiece"; }

 private:
  static std::optional<int32_t> id_or_none(int id) { return id >= 0 ? std::optional<int32_t>(id) : std::nullopt; }
  sentencepiece::SentencePieceProcessor sp_;
  bool add_dummy_prefix_ = true, no_chunks_ = false;
};

struct LoadedTokenizer {
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::optional<text::ChatTemplate> chat_template;
};

// A model folder, a .model file or a tokenizer.json file.
LoadedTokenizer load_tokenizer(const std::string& path_in) {
  const fs::path path(path_in);
  LoadedTokenizer t;
  fs::path dir;
  if (fs::is_directory(path)) {
    dir = path;
    if (fs::exists(path / "tokenizer.json")) t.tokenizer = text::load_tokenizer(path.string());
    if (!t.tokenizer || t.tokenizer->kind() == "sentencepiece") {
      if (!fs::exists(path / "tokenizer.model"))
        throw FormatError(path.string(), "no tokenizer: neither tokenizer.json nor tokenizer.model is in this folder");
      t.tokenizer = std::make_unique<LibSentencePieceTokenizer>((path / "tokenizer.model").string());
    }
  } else if (fs::is_regular_file(path)) {
    dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    if (path.extension() == ".json")
      t.tokenizer = text::load_hf_tokenizer(path.string());
    else
      t.tokenizer = std::make_unique<LibSentencePieceTokenizer>(path.string());
  } else {
    throw FormatError(path.string(), "tokenizer not found (give a model folder, a .model file or a tokenizer.json)");
  }
  try {
    t.chat_template = text::ChatTemplate::find_in_model_dir(dir.string());
  } catch (const std::exception& e) {
    // A broken template only matters for chat data; encode_jsonl reports the missing template.
    std::fprintf(stderr, "edgerazor-data: warning: ignoring the chat template in %s: %s\n", dir.c_str(), e.what());
  }
  return t;
}

std::string read_text(const std::string& path) {
  files::require_regular_file(path, "the input file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path, "cannot open input file");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (const std::string warning = text::describe_invalid_utf8(text, path); !warning.empty())
    std::fprintf(stderr, "edgerazor-data: %s\n", warning.c_str());
  return text;
}

std::vector<int32_t> parse_ids(const std::string& csv) {
  std::vector<int32_t> ids;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      ids.push_back(std::stoi(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw ConfigError("", 0, 0, "--ids", "'" + item + "' is not an integer token id");
    }
  }
  return ids;
}

void write_text_file(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << content;
    if (!out.flush()) {
      out.close();
      std::remove(tmp.c_str());
      throw FormatError(tmp, "write failed");
    }
  }
  fs::rename(tmp, path);
}

// ---------------------------------------------------------------------------------------------
struct EncodeArgs {
  std::string tokenizer, text, out, format = "text", split, separator = "<|endoftext|>", system_prompt,
              prompt_format = "auto", prompt_separator = "\\n";
  std::vector<std::string> in;
  bool bos = false, eos = false, no_eos = false, print_ids = false;
  int32_t eos_id = -1, bytes_per_token = 0;
};

void print_ids(const std::vector<int32_t>& ids) {
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
  std::printf("%s\n", line.c_str());
}

// The flat token file of io/token_file.h: the whole input as one document, BOS/EOS on request.
int run_encode_flat(const EncodeArgs& a, const text::Tokenizer& tok) {
  std::string content = a.text;
  for (const auto& f : a.in) content += read_text(f);
  std::vector<int32_t> ids = tok.encode(content);
  if (a.bos && tok.bos_id()) ids.insert(ids.begin(), *tok.bos_id());
  if (a.eos) ids.push_back(a.eos_id >= 0 ? a.eos_id : tok.eos_id().value_or(-1));
  if (!ids.empty() && ids.back() < 0) throw ConfigError("", 0, 0, "--eos", "the tokenizer defines no EOS token; give --eos-id");
  if (a.print_ids) print_ids(ids);
  if (!a.out.empty()) {
    edgerazor::io::write_token_file(a.out, ids);
    std::fprintf(stderr, "edgerazor-data: %zu tokens from %zu bytes -> %s\n", ids.size(), content.size(), a.out.c_str());
  }
  return 0;
}

int run_encode(const EncodeArgs& a) {
  if (a.in.empty() == a.text.empty()) throw ConfigError("", 0, 0, "encode", "give exactly one of --in FILE or --text TEXT");
  if (a.out.empty() && !a.print_ids) throw ConfigError("", 0, 0, "encode", "give --out FILE or --print-ids");
  for (const auto& f : a.in) files::require_regular_file(f, "the input file");
  std::vector<std::string> inputs = a.in;
  inputs.push_back(a.tokenizer);
  files::refuse_output_over_inputs(a.out, inputs, "--out");
  if (a.format != "text" && a.format != "jsonl")
    throw ConfigError("", 0, 0, "--format", "must be text or jsonl (got '" + a.format + "')");
  if (a.eos && a.no_eos) throw ConfigError("", 0, 0, "--no-eos", "contradicts --eos");
  const bool jsonl = a.format == "jsonl";
  if (!jsonl && a.split.empty()) {
    if (!a.system_prompt.empty()) throw ConfigError("", 0, 0, "--system-prompt", "applies to --format jsonl only");
    if (a.prompt_format != "auto") throw ConfigError("", 0, 0, "--prompt-format", "applies to --format jsonl only");
    return run_encode_flat(a, *load_tokenizer(a.tokenizer).tokenizer);
  }
  if (jsonl && !a.split.empty()) throw ConfigError("", 0, 0, "--split", "applies to text input only (JSONL has one document per line)");
  const data::DocumentSplit split = jsonl ? data::DocumentSplit::kNone : data::parse_document_split(a.split);
  const LoadedTokenizer t = load_tokenizer(a.tokenizer);
  data::EncodeOptions o;
  o.bos = a.bos;
  o.eos = !a.no_eos;
  o.eos_id = a.eos_id;
  o.system_prompt = a.system_prompt;
  o.prompt_format = data::parse_prompt_format(a.prompt_format, "--prompt-format");
  o.prompt_separator = unescape(a.prompt_separator);
  o.chat_template = t.chat_template ? &*t.chat_template : nullptr;
  const int32_t eos = o.eos ? data::resolve_eos_id(*t.tokenizer, o) : -1;
  if (a.print_ids) {  // one line per document
    std::vector<std::pair<std::string, std::string>> inputs;  // (name, content)
    if (!a.text.empty()) inputs.emplace_back("--text", a.text);
    for (const auto& f : a.in) inputs.emplace_back(f, read_text(f));
    for (const auto& [name, content] : inputs) {
      if (jsonl) {
        std::stringstream in(content);
        std::string line;
        uint64_t offset = 0;
        for (uint64_t n = 1; std::getline(in, line); ++n, offset += line.size() + 1)
          if (line.find_first_not_of(" \t\r") != std::string::npos)
            print_ids(data::encode_jsonl_record(*t.tokenizer, line, o, name, n, offset).ids);
      } else {
        for (const auto& doc : data::split_documents(content, split, a.separator))
          print_ids(data::encode_text_document(*t.tokenizer, doc, o).ids);
      }
    }
    if (a.out.empty()) return 0;
  }
  data::ShardWriterOptions wo;
  wo.bytes_per_token = a.bytes_per_token;
  wo.vocab_size = t.tokenizer->vocab_size();
  wo.eos_id = eos;
  wo.label_mask = jsonl;
  data::ShardWriter writer(a.out, wo);
  data::EncodeStats total;
  uint64_t bytes = 0;
  auto add = [&](const data::EncodeStats& s) {
    total.documents += s.documents;
    total.tokens += s.tokens;
    total.label_tokens += s.label_tokens;
    total.text_records += s.text_records;
    total.prompt_records += s.prompt_records;
    total.chat_records += s.chat_records;
  };
  if (!a.text.empty()) {
    bytes = a.text.size();
    if (jsonl) {
      std::stringstream in(a.text);
      add(data::encode_jsonl(*t.tokenizer, in, "--text", o, writer));
    } else {
      add(data::encode_text(*t.tokenizer, a.text, split, a.separator, o, writer));
    }
  }
  for (const auto& f : a.in) {
    if (jsonl) {
      std::ifstream in(f, std::ios::binary);
      if (!in) throw FormatError(f, "cannot open input file");
      add(data::encode_jsonl(*t.tokenizer, in, f, o, writer));
      bytes += fs::file_size(f);
    } else {
      const std::string content = read_text(f);
      bytes += content.size();
      add(data::encode_text(*t.tokenizer, content, split, a.separator, o, writer));
    }
  }
  if (total.documents == 0) throw FormatError(a.in.empty() ? "--text" : a.in.front(), "no documents in the input");
  const data::ShardInfo info = writer.finish();
  std::string kinds;
  if (jsonl)
    kinds = " (" + std::to_string(total.text_records) + " text, " + std::to_string(total.prompt_records) + " prompt/response, " +
            std::to_string(total.chat_records) + " chat)";
  std::fprintf(stderr, "edgerazor-data: %llu documents%s, %llu tokens (%.1f%% labelled), uint%d, from %llu bytes -> %s\n",
               static_cast<unsigned long long>(total.documents), kinds.c_str(), static_cast<unsigned long long>(total.tokens),
               total.tokens ? 100.0 * total.label_tokens / total.tokens : 0.0, info.bytes_per_token * 8,
               static_cast<unsigned long long>(bytes), a.out.c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------
struct DecodeArgs {
  std::string tokenizer, in, ids, out;
  int64_t document = -1;
  bool mark_labels = false;
};

int run_decode(const DecodeArgs& a) {
  if (a.in.empty() == a.ids.empty()) throw ConfigError("", 0, 0, "decode", "give exactly one of --in FILE or --ids LIST");
  files::refuse_output_over_inputs(a.out, {a.in, a.tokenizer}, "--out");
  if (!a.ids.empty() && (a.document >= 0 || a.mark_labels))
    throw ConfigError("", 0, 0, "decode", "--document and --mark-labels need --in FILE");
  const LoadedTokenizer t = load_tokenizer(a.tokenizer);
  std::vector<int32_t> ids;
  std::vector<bool> labels;
  if (!a.ids.empty()) {
    ids = parse_ids(a.ids);
  } else {
    const data::ShardReader r(a.in);
    uint64_t b = 0, e = r.size();
    if (a.document >= 0) {
      if (static_cast<uint64_t>(a.document) >= r.documents())
        throw ConfigError("", 0, 0, "--document", std::to_string(a.document) + " is out of range (the shard has " +
                                                      std::to_string(r.documents()) + " documents)");
      b = r.document_begin(a.document);
      e = r.document_begin(a.document + 1);
    }
    for (uint64_t i = b; i < e; ++i) {
      ids.push_back(r.token(i));
      labels.push_back(r.label(i));
    }
  }
  const int64_t vocab = t.tokenizer->vocab_size();
  for (int32_t id : ids)
    if (id < 0 || id >= vocab)
      throw FormatError(a.in.empty() ? "--ids" : a.in,
                        "token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(vocab) + ")");
  std::string out;
  if (!a.mark_labels) {
    out = t.tokenizer->decode(ids);
  } else {  // labelled runs as [[...]]
    for (size_t i = 0; i < ids.size();) {
      size_t j = i;
      while (j < ids.size() && labels[j] == labels[i]) ++j;
      const std::string piece = t.tokenizer->decode(std::vector<int32_t>(ids.begin() + i, ids.begin() + j));
      out += labels[i] ? "[[" + piece + "]]" : piece;
      i = j;
    }
  }
  if (a.out.empty()) {
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::printf("\n");
  } else {
    write_text_file(a.out, out);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
struct InfoArgs {
  std::vector<std::string> files;
  bool json = false;
};

int run_info(const InfoArgs& a) {
  nlohmann::json all = nlohmann::json::array();
  for (const auto& f : a.files) {
    const data::ShardReader r(f);
    const data::ShardInfo& i = r.info();
    const uint64_t labelled = r.count_label_tokens();
    nlohmann::json j = {{"path", f},
                        {"version", i.version},
                        {"bytes_per_token", i.bytes_per_token},
                        {"tokens", i.tokens},
                        {"documents", i.documents},
                        {"label_mask", i.has_label_mask},
                        {"label_tokens", labelled},
                        {"vocab_size", i.vocab_size},
                        {"max_token_id", i.max_token_id},
                        {"eos_id", i.eos_id},
                        {"file_bytes", i.file_bytes}};
    if (a.json) {
      all.push_back(j);
      continue;
    }
    std::printf("%s\n  version %d, uint%d tokens, %llu bytes\n  tokens     %llu\n  documents  %llu (mean %.1f tokens)\n"
                "  labelled   %llu (%.1f%%)%s\n  vocab size %lld, largest id %lld, eos id %lld\n",
                f.c_str(), i.version, i.bytes_per_token * 8, static_cast<unsigned long long>(i.file_bytes),
                static_cast<unsigned long long>(i.tokens), static_cast<unsigned long long>(i.documents),
                i.documents ? static_cast<double>(i.tokens) / i.documents : 0.0, static_cast<unsigned long long>(labelled),
                i.tokens ? 100.0 * labelled / i.tokens : 0.0, i.has_label_mask ? "" : " (no label mask)",
                static_cast<long long>(i.vocab_size), static_cast<long long>(i.max_token_id), static_cast<long long>(i.eos_id));
  }
  if (a.json) std::printf("%s\n", (all.size() == 1 ? all[0] : all).dump(2).c_str());
  return 0;
}

void add_encode_options(CLI::App* c, EncodeArgs& a, bool format_option) {
  c->add_option("--tokenizer", a.tokenizer, "model folder, .model file or tokenizer.json")->required();
  c->add_option("--in", a.in, "input file(s); repeat for several (all go into one output)");
  c->add_option("--text", a.text, "input given on the command line");
  c->add_option("--out", a.out, "output file");
  if (format_option) c->add_option("--format", a.format, "text (default) or jsonl");
  c->add_option("--split", a.split,
                "text: write a token shard with documents split by none|line|blank-line|separator|auto "
                "(auto: --separator when the text has it, else blank lines); without it a flat token file "
                "(one document, what edgerazor-eval --tokens reads) is written");
  c->add_option("--separator", a.separator, "document separator for --split separator/auto (default <|endoftext|>)");
  c->add_option("--system-prompt", a.system_prompt, "jsonl chats: system message added when a conversation has none");
  c->add_option("--prompt-format", a.prompt_format,
                "jsonl {prompt, response}: chat (a user and an assistant turn through the chat template), plain "
                "(prompt + --prompt-separator + response) or auto (chat when the tokenizer has a template)")
      ->capture_default_str();
  c->add_option("--prompt-separator", a.prompt_separator,
                "plain prompt format: text between prompt and response (\\n, \\t, \\\\ understood; '' for none)")
      ->capture_default_str();
  c->add_flag("--bos", a.bos, "prepend the BOS token (each document)");
  c->add_flag("--eos", a.eos, "flat token file: append the EOS token");
  c->add_flag("--no-eos", a.no_eos, "shards: do not append EOS after each document");
  c->add_option("--eos-id", a.eos_id, "EOS id to append instead of the tokenizer's")->check(edgerazor::cli::kNonNegative);
  c->add_option("--bytes-per-token", a.bytes_per_token, "shards: 2 or 4 (default: 2 when the vocabulary fits)");
  c->add_flag("--print-ids", a.print_ids, "print the ids comma-separated on stdout (one line per document)");
}

}  // namespace

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-data", [&] {
    CLI::App app{"edgerazor-data: tokenize text and JSONL into token shards and back"};
    app.require_subcommand(1);

    EncodeArgs enc;
    auto* encode = app.add_subcommand("encode", "text or JSONL -> token shard (or flat token file)");
    add_encode_options(encode, enc, true);
    EncodeArgs encj;
    encj.format = "jsonl";
    auto* encode_jsonl = app.add_subcommand("encode-jsonl", "JSONL ({text} | {prompt, response} | {messages}) -> token shard");
    add_encode_options(encode_jsonl, encj, false);

    DecodeArgs dec;
    auto* decode = app.add_subcommand("decode", "token ids -> text");
    decode->add_option("--tokenizer", dec.tokenizer, "model folder, .model file or tokenizer.json")->required();
    decode->add_option("--in", dec.in, "token shard or flat token file");
    decode->add_option("--ids", dec.ids, "comma-separated ids");
    decode->add_option("--out", dec.out, "text file to write (default: stdout)");
    decode->add_option("--document", dec.document, "decode only this document (0-based)");
    decode->add_flag("--mark-labels", dec.mark_labels, "wrap tokens that carry a loss label in [[...]]");

    InfoArgs inf;
    auto* info = app.add_subcommand("info", "print a shard's header and counts");
    info->add_option("files", inf.files, "token shards or flat token files")->required();
    info->add_flag("--json", inf.json, "machine-readable output");

    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    if (*encode) return run_encode(enc);
    if (*encode_jsonl) return run_encode(encj);
    if (*info) return run_info(inf);
    return run_decode(dec);
  });
}
