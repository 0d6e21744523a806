// edgerazor-eval: perplexity of a model on a text (or pre-tokenized) file, or downstream tasks
// from lm-evaluation-harness task files.
//
//   edgerazor-eval MODEL --text valid.txt [--seq-len N] [--max-tokens N] [--batch-size B]
//   edgerazor-eval MODEL --tokens valid.bin          # from `edgerazor-data encode`
//   edgerazor-eval MODEL --tasks a.yaml,b.yaml [--limit N] [--num-fewshot K] [--output DIR|FILE.json]
//                  [--log-samples] [--apply-chat-template]
//
// Perplexity: the text is tokenized as one document, cut into windows of seq_len tokens that
// each start with BOS; the mean NLL per predicted token (nats) and its exp are printed as one
// JSON line on stdout. Tasks: lm-eval's summary table on stdout, its results JSON (and samples)
// under --output. Progress bars on stderr.
#include <CLI/CLI.hpp>
#include <optional>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <filesystem>
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
#include "edgerazor/eval/evaluator.h"
#include "edgerazor/export/packed.h"
#include "edgerazor/model/task_model.h"
#include "edgerazor/text/chat_template.h"
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
    app.add_option("model", model_dir, "HF model folder, trainer checkpoint, run folder (its newest checkpoint) or packed checkpoint (.safetensors)")->required();
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
    std::string quant, tokenizer_dir;
    bool no_quant = false;
    app.add_option("--tokenizer", tokenizer_dir, "tokenizer folder (default: the model's; required for a packed checkpoint)");
    app.add_option("--quant", quant, "quantize with this preset or quantization YAML (PTQ baseline; default: a checkpoint's own)");
    std::vector<std::string> sets;
    app.add_option("--set", sets, "edit the quantization config first, e.g. --set function.w_block_size=64")->type_name("KEY=VALUE");
    app.add_flag("--no-quant", no_quant, "evaluate a checkpoint's float latent weights instead of its trained quantization");
    std::vector<std::string> task_files;
    std::string output, add_bos = "auto";
    int64_t limit = 0, num_fewshot = -1, max_length = 0, bootstrap_iters = 100000;
    uint64_t fewshot_seed = 1234;
    bool log_samples = false, apply_chat_template = false;
    std::string multiturn = "auto";
    auto* tasks = app.add_option("--tasks", task_files, "lm-evaluation-harness task YAML files (comma-separated)")->delimiter(',');
    app.add_option("--limit", limit, "tasks: only the first N documents of each task")->check(edgerazor::cli::kNonNegative);
    app.add_option("--num-fewshot", num_fewshot, "tasks: few-shot examples per prompt (overrides the task files)")->check(edgerazor::cli::kNonNegative);
    app.add_option("--fewshot-seed", fewshot_seed, "tasks: seed of the few-shot sampler (lm-eval's default)")->capture_default_str();
    app.add_option("--max-length", max_length, "tasks: context length in tokens (default: the model's max_position_embeddings)")->check(edgerazor::cli::kNonNegative);
    app.add_option("--add-bos-token", add_bos, "tasks: true, false or auto (the tokenizer's default, as lm-eval)")->check(CLI::IsMember({"auto", "true", "false"}));
    app.add_option("--bootstrap-iters", bootstrap_iters, "tasks: bootstrap resamples for median/perplexity stderr (0: none)")->capture_default_str()->check(edgerazor::cli::kNonNegative);
    app.add_option("--output", output, "tasks: results JSON file, or a folder for results.json and samples_TASK.jsonl");
    app.add_flag("--log-samples", log_samples, "tasks: also write each document's prompts, responses and metrics");
    app.add_flag("--apply-chat-template", apply_chat_template, "tasks: render prompts with the model's chat template");
    app.add_option("--fewshot-as-multiturn", multiturn, "tasks: few-shot examples as separate chat turns (auto: yes under --apply-chat-template, as lm-eval)")
        ->check(CLI::IsMember({"auto", "true", "false"}));
    text->excludes(tokens);
    tasks->excludes(text)->excludes(tokens);
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    if (text_file.empty() && tokens_file.empty() && task_files.empty())
      throw edgerazor::ConfigError("", 0, 0, "", "give --text FILE, --tokens FILE or --tasks TASK.yaml");
    if (task_files.empty() && (!output.empty() || log_samples || apply_chat_template || limit > 0))
      throw edgerazor::ConfigError("", 0, 0, "--tasks", "--output, --log-samples, --apply-chat-template and --limit apply to --tasks");
    if (log_samples && output.empty()) throw edgerazor::ConfigError("", 0, 0, "--log-samples", "needs --output (where the samples go)");
    if (multiturn == "true" && !apply_chat_template) throw edgerazor::ConfigError("", 0, 0, "--fewshot-as-multiturn", "needs --apply-chat-template");
    // Task files are read before the model loads, so a broken one fails at once.
    std::vector<edgerazor::eval::TaskConfig> task_configs;
    for (const auto& f : task_files) task_configs.push_back(edgerazor::eval::load_task_config(f));
    if (threads > 0) edgerazor::runtime::set_threads(threads);

    edgerazor::io::LoadOptions lo;
    lo.dtype = dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
    lo.device = edgerazor::runtime::resolve_device(device, 0, "--device");
    edgerazor::cli::ToolModel source;
    edgerazor::model::CausalLM model{nullptr};
    if (edgerazor::exporter::is_packed_checkpoint(model_dir)) {
      // The exported model itself: its codes and scales, with the A8/KV8 of its quantization config.
      if (!quant.empty() || no_quant || !sets.empty())
        throw edgerazor::ConfigError("", 0, 0, "--quant", "a packed checkpoint is already quantized: --quant, --no-quant and --set do not apply");
      if (tokenizer_dir.empty())
        throw edgerazor::ConfigError("", 0, 0, "--tokenizer", "a packed checkpoint carries no tokenizer: give --tokenizer MODEL_DIR");
      source.model_dir = model_dir;
      source.tokenizer_dir = tokenizer_dir;
      model = edgerazor::exporter::load_packed_for_inference(model_dir);
      model->to(lo.device, lo.dtype);
      std::fprintf(stderr, "edgerazor-eval: %s, packed checkpoint (its codes and scales, A8/KV8 as exported)\n", model_dir.c_str());
    } else {
      source = edgerazor::cli::resolve_tool_model("edgerazor-eval", model_dir, quant, no_quant, sets);
      if (!tokenizer_dir.empty()) source.tokenizer_dir = tokenizer_dir;
      model_dir = source.model_dir;
      model = edgerazor::io::load_pretrained(model_dir, lo);
    }
    const int64_t positions = model->config.max_position_embeddings;
    if (seq_len > positions)
      throw edgerazor::ConfigError("", 0, 0, "--seq-len", std::to_string(seq_len) + " is more than the model's " +
                                                              std::to_string(positions) + " positions (max_position_embeddings)");
    if (!source.quant.empty()) {
      const auto report = edgerazor::quant::quantize_for_inference(*model, source.quant_config());
      if (!quiet) std::fprintf(stderr, "%s", report.to_text().c_str());
    }
    if (!task_configs.empty()) {
      const auto tokenizer = edgerazor::io::load_model_tokenizer(source.tokenizer_dir);
      edgerazor::model::TaskModelOptions mo;
      mo.batch_size = batch_size;
      mo.max_length = max_length;
      if (add_bos != "auto") mo.add_bos_token = add_bos == "true";
      edgerazor::model::TaskLanguageModel lm(*model, *tokenizer, mo);
      edgerazor::eval::EvaluationOptions eo;
      eo.limit = limit;
      eo.num_fewshot = num_fewshot;
      eo.fewshot_seed = fewshot_seed;
      eo.bootstrap_iters = bootstrap_iters;
      eo.log_samples = log_samples;
      eo.fewshot_as_multiturn = apply_chat_template && multiturn != "false";
      if (apply_chat_template) eo.chat = edgerazor::eval::chat_formatter(edgerazor::text::ChatTemplate::from_model_dir(source.tokenizer_dir));
      std::optional<edgerazor::Progress> bar;
      if (!quiet)
        eo.progress = [&bar](const std::string& task, const std::string& kind, size_t total) {
          bar.reset();
          bar.emplace(task + " " + kind + " requests", static_cast<int64_t>(total));
          const auto start = std::chrono::steady_clock::now();
          return edgerazor::eval::RequestProgress([&bar, start](size_t done, size_t) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            char rate[48];
            std::snprintf(rate, sizeof(rate), "%.1f items/s", s > 0 ? static_cast<double>(done) / s : 0.0);
            bar->update(static_cast<int64_t>(done), rate);
          });
        };
      auto out = edgerazor::eval::evaluate_tasks(lm, task_configs, eo);
      if (bar) bar->finish();
      int64_t parameters = 0;
      for (const auto& p : model->unique_named_parameters()) parameters += p.second.numel();
      out.results["config"]["model"] = "edgerazor";
      out.results["config"]["model_args"] = {{"pretrained", model_dir}, {"dtype", dtype}, {"quant", source.quant}};
      out.results["config"]["model_num_parameters"] = parameters;
      out.results["config"]["batch_size"] = batch_size;
      out.results["config"]["device"] = device;
      out.results["max_length"] = lm.max_length();
      std::printf("%s", edgerazor::eval::results_table(out.results).c_str());
      if (!output.empty()) {
        namespace fs = std::filesystem;
        const bool to_file = fs::path(output).extension() == ".json";
        if (!to_file) fs::create_directories(output);
        const std::string results_file = to_file ? output : (fs::path(output) / "results.json").string();
        edgerazor::files::write_text_atomically(results_file, out.results.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
        for (size_t t = 0; t < out.samples.size() && log_samples; ++t) {
          std::string lines;
          for (const auto& sample : out.samples[t]) lines += sample.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
          const fs::path dir = to_file ? fs::path(output).parent_path() : fs::path(output);
          edgerazor::files::write_text_atomically((dir / ("samples_" + task_configs[t].task + ".jsonl")).string(), lines);
        }
        if (!quiet) std::fprintf(stderr, "edgerazor-eval: results in %s\n", results_file.c_str());
      }
      return 0;
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
