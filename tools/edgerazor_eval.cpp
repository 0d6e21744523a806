// edgerazor-eval: perplexity of a model folder on a text (or pre-tokenized) file.
//
//   edgerazor-eval MODEL_DIR --text valid.txt [--seq-len N] [--max-tokens N] [--batch-size B]
//   edgerazor-eval MODEL_DIR --tokens valid.bin          # from `edgerazor-data encode`
//
// The text is tokenized as one document, cut into windows of seq_len tokens that each start
// with BOS; the mean NLL per predicted token (nats) and its exp are printed as one JSON line on
// stdout, with a progress bar on stderr.
#include <CLI/CLI.hpp>
#include <optional>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "edgerazor/runtime/device.h"
#include "edgerazor/config/quant_presets.h"
#include "edgerazor/core/cli.h"
#include "edgerazor/core/progress.h"
#include "model_source.h"
#include "tool_flags.h"
#include "edgerazor/text/unicode.h"
#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/io/model_tokenizer.h"
#include "edgerazor/io/token_file.h"
#include "edgerazor/model/perplexity.h"
#include "edgerazor/quant/inject.h"
#include "edgerazor/runtime/runtime.h"

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-eval", [&] {
    std::string model_dir, text_file, tokens_file, dtype = "float32", device = "auto";
    int64_t seq_len = 0, max_tokens = 0, batch_size = 4;
    bool no_bos = false, quiet = false;
    int threads = 0;
    CLI::App app{"edgerazor-eval: perplexity (mean NLL per token) of a model folder"};
    app.add_option("model", model_dir, "HF model folder, trainer checkpoint or run folder (its newest checkpoint)")->required();
    auto* text = app.add_option("--text,--data", text_file, "text file, tokenized as one document");
    auto* tokens = app.add_option("--tokens", tokens_file, "token file from edgerazor-data encode");
    app.add_option("--seq-len", seq_len, "window length in tokens, BOS included (default: min(512, max positions))")
        ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
    app.add_option("--max-tokens", max_tokens, "evaluate only the first N tokens")->check(edgerazor::cli::kNonNegative);
    app.add_option("--batch-size", batch_size, "windows per forward pass")->check(edgerazor::cli::kPositive);
    app.add_flag("--no-bos", no_bos, "do not start windows with BOS");
    app.add_flag("--quiet", quiet, "no progress bar");
    app.add_option("--dtype", dtype, "float32 or bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}));
    app.add_option("--device", device, "cpu, cuda, cuda:N or auto (a GPU when one is visible)")->capture_default_str();
    app.add_option("--threads", threads, "intra-op threads (default: all cores)");
    std::string quant;
    bool no_quant = false;
    app.add_option("--quant", quant, "quantize with this preset or quantization YAML (PTQ baseline; default: a checkpoint's own)");
    std::vector<std::string> sets;
    app.add_option("--set", sets, "edit the quantization config first, e.g. --set function.w_block_size=64")->type_name("KEY=VALUE");
    app.add_flag("--no-quant", no_quant, "evaluate a checkpoint's float latent weights instead of its trained quantization");
    text->excludes(tokens);
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    if (text_file.empty() && tokens_file.empty()) throw edgerazor::ConfigError("", 0, 0, "", "give --text FILE or --tokens FILE");
    if (threads > 0) edgerazor::runtime::set_threads(threads);

    const auto source = edgerazor::cli::resolve_tool_model("edgerazor-eval", model_dir, quant, no_quant, sets);
    model_dir = source.model_dir;
    edgerazor::io::LoadOptions lo;
    lo.dtype = dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
    lo.device = edgerazor::runtime::resolve_device(device, 0, "--device");
    auto model = edgerazor::io::load_pretrained(model_dir, lo);
    const int64_t positions = model->config.max_position_embeddings;
    if (seq_len > positions)
      throw edgerazor::ConfigError("", 0, 0, "--seq-len", std::to_string(seq_len) + " is more than the model's " +
                                                              std::to_string(positions) + " positions (max_position_embeddings)");
    if (!source.quant.empty()) {
      const auto report = edgerazor::quant::quantize_for_inference(*model, source.quant_config());
      if (!quiet) std::fprintf(stderr, "%s", report.to_text().c_str());
    }
    std::unique_ptr<edgerazor::text::Tokenizer> tokenizer;
    std::vector<int32_t> ids;
    if (!tokens_file.empty()) {
      ids = edgerazor::io::read_token_file(tokens_file);
    } else {
      edgerazor::files::require_regular_file(text_file, "the text file");
      std::ifstream in(text_file, std::ios::binary);
      if (!in) throw edgerazor::FormatError(text_file, "cannot open text file");
      std::stringstream ss;
      ss << in.rdbuf();
      tokenizer = edgerazor::io::load_model_tokenizer(source.tokenizer_dir);
      if (const auto warning = edgerazor::text::describe_invalid_utf8(ss.str(), text_file); !warning.empty())
        std::fprintf(stderr, "edgerazor-eval: %s\n", warning.c_str());
      ids = tokenizer->encode(ss.str());
    }
    const std::string data_file = tokens_file.empty() ? text_file : tokens_file;
    if (ids.size() < (no_bos ? 2u : 1u))
      throw edgerazor::FormatError(data_file, "has " + std::to_string(ids.size()) +
                                                  " tokens: nothing to evaluate (an empty text would score a perplexity of 1)");
    const int64_t V = model->config.vocab_size;
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= V)
        throw edgerazor::FormatError(tokens_file.empty() ? text_file : tokens_file,
                                     "token " + std::to_string(i) + " = " + std::to_string(ids[i]) +
                                         " is outside the model's vocabulary (" + std::to_string(V) + ")");

    edgerazor::model::PerplexityOptions po;
    po.seq_len = seq_len > 0 ? seq_len : std::min<int64_t>(512, model->config.max_position_embeddings);
    po.max_tokens = max_tokens;
    po.batch_size = batch_size;
    if (!no_bos) {
      if (tokenizer && tokenizer->bos_id()) po.bos_id = *tokenizer->bos_id();
      else if (model->config.bos_token_id) po.bos_id = static_cast<int32_t>(*model->config.bos_token_id);
    }
    std::optional<edgerazor::Progress> progress;
    if (!quiet)
      po.progress = [&progress](int64_t done, int64_t total) {
        if (!progress) progress.emplace("tokens", total);
        progress->update(done);
      };
    const auto r = edgerazor::model::evaluate_perplexity(*model, ids, po);
    if (progress) progress->finish();
    const nlohmann::json result = {{"model", model_dir},
                                   {"data", tokens_file.empty() ? text_file : tokens_file},
                                   {"seq_len", po.seq_len},
                                   {"bos", po.bos_id.has_value()},
                                   {"windows", r.windows},
                                   {"tokens", r.tokens},
                                   {"mean_nll", r.mean_nll},
                                   {"perplexity", r.perplexity},
                                   {"quant", source.quant}};
    std::printf("%s\n", result.dump().c_str());
    return 0;
  });
}
