// edgerazor-data: the tokenizing tool. It links libsentencepiece and therefore never libtorch
// (two protobuf copies crash one process; DESIGN.md "Tokenizer isolation").
//
//   edgerazor-data encode --tokenizer tokenizer.model --in text.txt --out tokens.bin [--bos]
//   edgerazor-data encode --tokenizer tokenizer.model --text "Once upon" --print-ids
//   edgerazor-data decode --tokenizer tokenizer.model --in tokens.bin [--out text.txt]
//   edgerazor-data decode --tokenizer tokenizer.model --ids 1,403,407
//
// One function per subcommand; later subcommands (shards, mixing) add theirs beside them.
#include <CLI/CLI.hpp>
#include <sentencepiece_processor.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "edgerazor/core/cli.h"
#include "edgerazor/core/error.h"
#include "edgerazor/io/token_file.h"

namespace {
namespace fs = std::filesystem;
using edgerazor::ConfigError;
using edgerazor::FormatError;

// A tokenizer.model path, or a model folder holding one.
std::unique_ptr<sentencepiece::SentencePieceProcessor> load_processor(const std::string& path_in) {
  fs::path path(path_in);
  if (fs::is_directory(path)) path /= "tokenizer.model";
  if (!fs::exists(path)) throw FormatError(path.string(), "tokenizer not found");
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(path.string());
  if (!status.ok()) throw FormatError(path.string(), "cannot load SentencePiece model: " + status.ToString());
  return sp;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path, "cannot open input file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int> parse_ids(const std::string& csv) {
  std::vector<int> ids;
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

// ---------------------------------------------------------------------------------------------
struct EncodeArgs {
  std::string tokenizer, in, text, out;
  bool bos = false, eos = false, print_ids = false;
};

int run_encode(const EncodeArgs& a) {
  if (a.in.empty() == a.text.empty()) throw ConfigError("", 0, 0, "encode", "give exactly one of --in FILE or --text TEXT");
  if (a.out.empty() && !a.print_ids) throw ConfigError("", 0, 0, "encode", "give --out FILE or --print-ids");
  auto sp = load_processor(a.tokenizer);
  const std::string text = a.in.empty() ? a.text : read_text(a.in);
  std::vector<int> ids;
  const auto status = sp->Encode(text, &ids);
  if (!status.ok()) throw std::runtime_error("encoding failed: " + status.ToString());
  if (a.bos && sp->bos_id() >= 0) ids.insert(ids.begin(), sp->bos_id());
  if (a.eos && sp->eos_id() >= 0) ids.push_back(sp->eos_id());
  if (a.print_ids) {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  }
  if (!a.out.empty()) {
    edgerazor::io::write_token_file(a.out, std::vector<int32_t>(ids.begin(), ids.end()));
    std::fprintf(stderr, "edgerazor-data: %zu tokens from %zu bytes -> %s\n", ids.size(), text.size(), a.out.c_str());
  }
  return 0;
}

struct DecodeArgs {
  std::string tokenizer, in, ids, out;
};

int run_decode(const DecodeArgs& a) {
  if (a.in.empty() == a.ids.empty()) throw ConfigError("", 0, 0, "decode", "give exactly one of --in FILE or --ids LIST");
  auto sp = load_processor(a.tokenizer);
  std::vector<int> ids;
  if (!a.ids.empty()) {
    ids = parse_ids(a.ids);
  } else {
    const auto tokens = edgerazor::io::read_token_file(a.in);
    ids.assign(tokens.begin(), tokens.end());
  }
  for (int id : ids)
    if (id < 0 || id >= sp->GetPieceSize())
      throw FormatError(a.in.empty() ? "--ids" : a.in, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                                        std::to_string(sp->GetPieceSize()) + ")");
  std::string text;
  const auto status = sp->Decode(ids, &text);
  if (!status.ok()) throw std::runtime_error("decoding failed: " + status.ToString());
  if (a.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
  } else {
    const std::string tmp = a.out + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary);
      out << text;
      if (!out.flush()) throw FormatError(tmp, "write failed");
    }
    fs::rename(tmp, a.out);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-data", [&] {
    CLI::App app{"edgerazor-data: tokenize text into token files and back"};
    app.require_subcommand(1);

    EncodeArgs enc;
    auto* encode = app.add_subcommand("encode", "text -> token ids (SentencePiece .model)");
    encode->add_option("--tokenizer", enc.tokenizer, "tokenizer.model or a model folder")->required();
    encode->add_option("--in", enc.in, "text file (encoded as one document)");
    encode->add_option("--text", enc.text, "text given on the command line");
    encode->add_option("--out", enc.out, "token file to write");
    encode->add_flag("--bos", enc.bos, "prepend the BOS token");
    encode->add_flag("--eos", enc.eos, "append the EOS token");
    encode->add_flag("--print-ids", enc.print_ids, "print the ids comma-separated on stdout");

    DecodeArgs dec;
    auto* decode = app.add_subcommand("decode", "token ids -> text");
    decode->add_option("--tokenizer", dec.tokenizer, "tokenizer.model or a model folder")->required();
    decode->add_option("--in", dec.in, "token file");
    decode->add_option("--ids", dec.ids, "comma-separated ids");
    decode->add_option("--out", dec.out, "text file to write (default: stdout)");

    try {
      app.parse(argc, argv);
    } catch (const CLI::Success& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      throw ConfigError("", 0, 0, "", e.what());
    }
    if (*encode) return run_encode(enc);
    return run_decode(dec);
  });
}
