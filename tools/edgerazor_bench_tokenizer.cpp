// edgerazor-bench-tokenizer: encode/decode throughput of a model folder's tokenizer on one core.
//
//   edgerazor-bench-tokenizer [--model DIR] [--repeat 3] [FILE ...]
//
// Defaults: the real Qwen3 tokenizer and TinyStories (valid + train samples) + Shakespeare from
// shared/data. Each file is encoded whole. "first pass" starts from a freshly loaded tokenizer
// (empty pre-token cache), "steady" is the best of --repeat later passes. Prints one JSON line
// per measurement and a summary; bench/README-tokenizer.md records the numbers.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "edgerazor/core/cli.h"
#include "tool_flags.h"
#include "edgerazor/core/error.h"
#include "edgerazor/text/tokenizer.h"

#ifndef EDGERAZOR_SHARED_DATA_DIR
#define EDGERAZOR_SHARED_DATA_DIR "../shared/data"
#endif

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw edgerazor::FormatError(path, "cannot open file");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-bench-tokenizer", [&] {
    const std::string data = EDGERAZOR_SHARED_DATA_DIR;
    CLI::App app{"Tokenizer encode/decode throughput on one core"};
    std::string model_dir = data + "/models/qwen3-tokenizer";
    std::vector<std::string> files;
    int repeat = 3;
    app.add_option("--model", model_dir, "model folder (tokenizer.json or tokenizer.model)");
    app.add_option("--repeat", repeat, "steady-state passes (best is reported)")->check(edgerazor::cli::kPositive);
    app.add_option("files", files, "text files (default: TinyStories + Shakespeare from shared/data)");
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    if (files.empty())
      files = {data + "/text/tinystories-valid-sample.txt", data + "/text/tinystories-train-sample.txt",
               data + "/text/tinyshakespeare.txt"};
    std::vector<std::string> texts;
    size_t total_bytes = 0;
    for (const std::string& f : files) {
      texts.push_back(read_file(f));
      total_bytes += texts.back().size();
    }
    const double mb = static_cast<double>(total_bytes) / 1e6;

    auto start = std::chrono::steady_clock::now();
    const auto tokenizer = edgerazor::text::load_tokenizer(model_dir);
    const double load_s = seconds_since(start);

    size_t total_ids = 0;
    std::vector<std::vector<int32_t>> ids(texts.size());
    start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < texts.size(); ++i) ids[i] = tokenizer->encode(texts[i]);
    const double first_s = seconds_since(start);
    for (const auto& v : ids) total_ids += v.size();

    double steady_s = 1e30, decode_s = 1e30;
    for (int r = 0; r < repeat; ++r) {
      start = std::chrono::steady_clock::now();
      for (size_t i = 0; i < texts.size(); ++i) ids[i] = tokenizer->encode(texts[i]);
      steady_s = std::min(steady_s, seconds_since(start));
      start = std::chrono::steady_clock::now();
      size_t decoded = 0;
      for (const auto& v : ids) decoded += tokenizer->decode(v).size();
      decode_s = std::min(decode_s, seconds_since(start));
      if (decoded == 0) throw std::runtime_error("decode produced nothing");
    }
    const nlohmann::json result = {{"model", model_dir},
                                   {"kind", tokenizer->kind()},
                                   {"bytes", total_bytes},
                                   {"tokens", total_ids},
                                   {"load_s", load_s},
                                   {"encode_first_pass_mb_s", mb / first_s},
                                   {"encode_steady_mb_s", mb / steady_s},
                                   {"decode_mb_s", mb / decode_s},
                                   {"bytes_per_token", static_cast<double>(total_bytes) / static_cast<double>(total_ids)}};
    std::printf("%s\n", result.dump().c_str());
    std::printf("encode: %.1f MB/s first pass, %.1f MB/s steady; decode %.1f MB/s; %zu bytes -> %zu tokens; load %.2f s\n",
                mb / first_s, mb / steady_s, mb / decode_s, total_bytes, total_ids, load_s);
    return 0;
  });
}
