// edgerazor-generate: text generation from a Hugging Face model folder.
//
//   edgerazor-generate MODEL_DIR --prompt "Once upon a time" [--max-new-tokens N]
//                      [--temperature T --top-p P --seed S] [--greedy]
//   edgerazor-generate MODEL_DIR --prompt-ids 1 --greedy --print-ids      # exact token work
//   edgerazor-generate MODEL_DIR --prompts prompts.jsonl --out generated.jsonl   # batch, resumable
//   edgerazor-generate MODEL_DIR --quant w1.58a8kv8 --prompt "..."   # post-training quantized
//   edgerazor-generate QWEN_DIR --chat --prompt "Hi" [--system "..."]   # model's chat template
//   edgerazor-generate QWEN_DIR --chat                                   # interactive chat on stdin
//   ... [--top-k K] [--repetition-penalty R] [--stop STRING ...]
//
// Batch mode reads one JSON object per line with "prompt" (and optionally "id" and per-prompt
// options, see record_options), and appends {"prompt", "response"[, "id"]} lines; prompts already
// in the output are skipped, so an interrupted run continues where it stopped.
#include <ATen/Context.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <unistd.h>

#include "edgerazor/runtime/device.h"
#include "edgerazor/config/quant_presets.h"
#include "edgerazor/core/cli.h"
#include "edgerazor/core/progress.h"
#include "model_source.h"
#include "tool_flags.h"
#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"
#include "edgerazor/core/json_records.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/io/model_tokenizer.h"
#include "edgerazor/model/generation.h"
#include "edgerazor/quant/inject.h"
#include "edgerazor/text/chat_template.h"
#include "edgerazor/runtime/runtime.h"

namespace {
namespace fs = std::filesystem;
using edgerazor::ConfigError;
using nlohmann::json;

struct Args {
  std::string model_dir, prompt, prompt_ids, prompts_file, out_file, dtype = "float32", device = "auto";
  std::string quant, system_prompt;
  std::vector<std::string> sets;
  bool chat = false;
  std::vector<std::string> stops;
  int64_t max_new_tokens = 128, top_k = 0, batch_size = 8;
  double temperature = 0.8, top_p = 0.95, repetition_penalty = 1.0;
  uint64_t seed = 0;
  bool greedy = false, print_ids = false, no_bos = false, no_quant = false;
  int threads = 0;
};

std::vector<int64_t> parse_ids(const std::string& csv) {
  std::vector<int64_t> ids;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    try {
      ids.push_back(std::stoll(item, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) throw ConfigError("", 0, 0, "--prompt-ids", "'" + item + "' is not a token id");
  }
  return ids;
}

std::string join_ids(const std::vector<int64_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

std::vector<int32_t> to_i32(const std::vector<int64_t>& v) { return std::vector<int32_t>(v.begin(), v.end()); }

struct Session {
  edgerazor::model::CausalLM model{nullptr};
  std::unique_ptr<edgerazor::text::Tokenizer> tokenizer;
  edgerazor::model::GenerationOptions gen;
  bool add_bos = true;
  std::optional<edgerazor::text::ChatTemplate> chat;  // set: prompts are user turns of a chat
  std::string system_prompt;

  // A conversation rendered by the model's chat template, ending with the assistant's turn
  // opened; the template writes any BOS itself.
  std::vector<int64_t> encode_chat(const std::vector<edgerazor::text::ChatMessage>& messages) const {
    const auto rendered = edgerazor::text::render_chat(*chat, messages, /*add_generation_prompt=*/true);
    std::vector<int64_t> ids;
    for (int32_t id : tokenizer->encode(rendered.text)) ids.push_back(id);
    return ids;
  }

  std::vector<int64_t> encode_prompt(const std::string& text, const std::string& system) const {
    if (chat) {
      std::vector<edgerazor::text::ChatMessage> messages;
      if (!system.empty()) messages.push_back({"system", system});
      messages.push_back({"user", text});
      return encode_chat(messages);
    }
    std::vector<int64_t> ids;
    if (add_bos && tokenizer->add_bos_by_default() && tokenizer->bos_id()) ids.push_back(*tokenizer->bos_id());
    for (int32_t id : tokenizer->encode(text)) ids.push_back(id);
    return ids;
  }
  // One completion: ids as generated (a stop token kept, stop-string tokens kept) and its text
  // (no stop token, cut before the first stop string).
  struct Completion {
    std::vector<int64_t> ids;
    std::string text;
  };
  // The text of one completion as its tokens arrive, cut at the first stop string.
  struct StopText {
    const edgerazor::text::Tokenizer* tokenizer;
    const std::vector<std::string>* stops;
    const std::vector<int64_t>* stop_ids;
    bool always = false;  // decode every token even without stop strings (streaming)
    std::vector<int64_t> ids;  // without stop tokens
    std::string text;
    bool stopped = false;
    // false once a stop string has appeared.
    bool feed(int64_t id) {
      if (!tokenizer || (stops->empty() && !always)) return true;
      if (std::find(stop_ids->begin(), stop_ids->end(), id) != stop_ids->end()) return true;
      ids.push_back(id);
      text = tokenizer->decode(to_i32(ids));
      size_t stop_length = 0;
      const size_t at = edgerazor::model::find_stop_string(text, *stops, stop_length);
      if (at != std::string::npos) {
        text.resize(at);
        stopped = true;
      }
      return !stopped;
    }
  };
  void check_prompt(const std::vector<int64_t>& prompt) const {
    const int64_t V = model->config.vocab_size;
    for (int64_t id : prompt)
      if (id < 0 || id >= V) throw ConfigError("", 0, 0, "prompt", "token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(V) + ")");
  }
  Completion finished(std::vector<int64_t> ids, const StopText& stop_text,
                      const edgerazor::model::GenerationOptions& options) const {
    Completion c{std::move(ids), stop_text.text};
    if (tokenizer && !stop_text.stopped) c.text = response_text(c.ids, options);
    return c;
  }
  // `stream`: print the text as it comes, holding back what could still become a stop string
  // and a torn UTF-8 character.
  Completion complete(const std::vector<int64_t>& prompt, const edgerazor::model::GenerationOptions& options,
                      const std::vector<std::string>& stops, std::FILE* stream = nullptr) {
    check_prompt(prompt);
    StopText st{tokenizer.get(), &stops, &options.stop_ids, stream != nullptr};
    size_t longest_stop = 0, printed = 0;
    for (const auto& stop : stops) longest_stop = std::max(longest_stop, stop.size());
    const auto print_upto = [&](size_t n) {
      if (n <= printed) return;
      std::fwrite(st.text.data() + printed, 1, n - printed, stream);
      std::fflush(stream);
      printed = n;
    };
    const auto on_token = [&](int64_t id) {
      const bool go_on = st.feed(id);
      if (stream) {
        const size_t safe = st.stopped ? st.text.size() : (st.text.size() > longest_stop ? st.text.size() - longest_stop : 0);
        print_upto(st.stopped ? safe : utf8_boundary(st.text, std::max(safe, printed)));
      }
      return go_on;
    };
    Completion c = finished(edgerazor::model::generate(*model, prompt, options, on_token), st, options);
    if (stream && c.text.size() > printed) {
      std::fwrite(c.text.data() + printed, 1, c.text.size() - printed, stream);
      std::fflush(stream);
    }
    return c;
  }
  // Several prompts in one batch (generate_batch), each with its own options and stop strings.
  std::vector<Completion> complete_batch(const std::vector<std::vector<int64_t>>& prompts,
                                         const std::vector<edgerazor::model::GenerationOptions>& options,
                                         const std::vector<std::vector<std::string>>& stops) {
    for (const auto& p : prompts) check_prompt(p);
    std::vector<StopText> texts;
    for (size_t b = 0; b < prompts.size(); ++b) texts.push_back(StopText{tokenizer.get(), &stops[b], &options[b].stop_ids});
    auto ids = edgerazor::model::generate_batch(*model, prompts, options,
                                                [&](size_t b, int64_t id) { return texts[b].feed(id); });
    std::vector<Completion> out;
    for (size_t b = 0; b < prompts.size(); ++b) out.push_back(finished(std::move(ids[b]), texts[b], options[b]));
    return out;
  }
  // The completion without a trailing stop token.
  std::string response_text(std::vector<int64_t> ids, const edgerazor::model::GenerationOptions& options) const {
    if (!ids.empty() && std::find(options.stop_ids.begin(), options.stop_ids.end(), ids.back()) != options.stop_ids.end()) ids.pop_back();
    return tokenizer->decode(to_i32(ids));
  }
  // The largest n <= limit that does not cut a UTF-8 character of text in two.
  static size_t utf8_boundary(const std::string& text, size_t limit) {
    size_t n = std::min(limit, text.size());
    while (n > 0 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    return n;
  }
};

// The options of one batch record: the command line's, overridden by the record's own
// "max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed", "stop" and
// "system" (other keys besides "prompt" and "id" are the user's own metadata and ignored).
edgerazor::model::GenerationOptions record_options(const json& j, const edgerazor::model::GenerationOptions& base,
                                                   std::vector<std::string>& stops, std::string& system,
                                                   const std::string& file, int line) {
  auto options = base;
  const auto bad = [&](const char* key, const std::string& why) { return ConfigError(file, line, 0, key, why); };
  const auto number = [&](const char* key, double low, double high) {
    if (!j[key].is_number()) throw bad(key, "must be a number");
    const double v = j[key].get<double>();
    if (!(v >= low && v <= high)) throw bad(key, "must be in [" + std::to_string(low) + ", " + std::to_string(high) + "]");
    return v;
  };
  const auto integer = [&](const char* key, int64_t low) {
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < low)
      throw bad(key, "must be an integer >= " + std::to_string(low));
    return j[key].get<int64_t>();
  };
  if (j.contains("max_new_tokens")) options.max_new_tokens = integer("max_new_tokens", 1);
  if (j.contains("top_k")) options.top_k = integer("top_k", 0);
  if (j.contains("seed")) options.seed = static_cast<uint64_t>(integer("seed", 0));
  if (j.contains("temperature")) {
    options.temperature = number("temperature", 0, 1e9);
    options.greedy = options.temperature <= 0;
  }
  if (j.contains("top_p")) options.top_p = number("top_p", 0, 1);
  if (j.contains("repetition_penalty")) options.repetition_penalty = number("repetition_penalty", 1e-9, 1e9);
  if (j.contains("stop")) {
    stops.clear();
    if (j["stop"].is_string()) {
      stops.push_back(j["stop"].get<std::string>());
    } else if (j["stop"].is_array()) {
      for (const auto& v : j["stop"]) {
        if (!v.is_string()) throw bad("stop", "must be a string or a list of strings");
        stops.push_back(v.get<std::string>());
      }
    } else {
      throw bad("stop", "must be a string or a list of strings");
    }
  }
  if (j.contains("system")) {
    if (!j["system"].is_string()) throw bad("system", "must be a string");
    system = j["system"].get<std::string>();
  }
  return options;
}

// One line of the prompts file with its options resolved (the flags, then its own keys).
struct Record {
  json j;
  edgerazor::model::GenerationOptions options;
  std::vector<std::string> stops;
  std::string system;
};

int run_batch(Session& s, const Args& a) {
  std::ifstream in(a.prompts_file);
  if (!in) throw edgerazor::FormatError(a.prompts_file, "cannot open prompts file");
  std::vector<Record> prompts;  // every line checked before the first runs
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = edgerazor::json_records::parse(line);
    } catch (const json::parse_error& e) {
      throw ConfigError(a.prompts_file, line_no, 0, "", std::string("not valid JSON: ") + e.what());
    } catch (const edgerazor::json_records::DuplicateKey& e) {
      throw ConfigError(a.prompts_file, line_no, 0, e.key, "given twice in one record");
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      throw ConfigError(a.prompts_file, line_no, 0, "prompt", "each line needs a string \"prompt\"");
    Record r{j, {}, a.stops, s.system_prompt};
    r.options = record_options(j, s.gen, r.stops, r.system, a.prompts_file, line_no);
    prompts.push_back(std::move(r));
  }
  // Resume: keys of complete lines already written; a torn last line is cut off.
  auto key_of = [](const json& j) { return j.contains("id") ? "id:" + j["id"].dump() : "p:" + j["prompt"].get<std::string>(); };
  std::set<std::string> done_keys;
  if (fs::exists(a.out_file)) {
    std::ifstream prev(a.out_file);
    std::string kept, l;
    while (std::getline(prev, l)) {
      try {
        const json j = json::parse(l);
        if (j.contains("prompt") && j.contains("response")) {
          done_keys.insert(key_of(j));
          kept += l + "\n";
        }
      } catch (const json::parse_error&) {
      }
    }
    prev.close();
    std::ofstream rewrite(a.out_file + ".tmp");
    rewrite << kept;
    rewrite.close();
    fs::rename(a.out_file + ".tmp", a.out_file);
  }
  std::ofstream out(a.out_file, std::ios::app);
  if (!out) throw edgerazor::FormatError(a.out_file, "cannot open for writing");
  size_t done = 0, skipped = 0;
  int64_t tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  edgerazor::Progress progress("prompts", static_cast<int64_t>(prompts.size()));
  // Pending prompts go in batches of --batch-size (one forward per step for all of them); lines
  // are written in input order as each batch finishes.
  std::vector<size_t> pending;
  std::set<std::string> queued;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (done_keys.count(key_of(prompts[i].j)) || !queued.insert(key_of(prompts[i].j)).second) {
      ++done;
      ++skipped;
      continue;
    }
    pending.push_back(i);
  }
  progress.update(static_cast<int64_t>(done));
  for (size_t first = 0; first < pending.size(); first += static_cast<size_t>(a.batch_size)) {
    const size_t last = std::min(pending.size(), first + static_cast<size_t>(a.batch_size));
    std::vector<std::vector<int64_t>> batch;
    std::vector<edgerazor::model::GenerationOptions> options;
    std::vector<std::vector<std::string>> stops;
    for (size_t k = first; k < last; ++k) {
      const Record& r = prompts[pending[k]];
      options.push_back(r.options);
      stops.push_back(r.stops);
      batch.push_back(s.encode_prompt(r.j["prompt"].get<std::string>(), r.system));
    }
    const auto completions = s.complete_batch(batch, options, stops);
    for (size_t k = first; k < last; ++k) {
      const json& p = prompts[pending[k]].j;
      const auto& completion = completions[k - first];
      tokens += static_cast<int64_t>(completion.ids.size());
      json row = {{"prompt", p["prompt"]}, {"response", completion.text}};
      if (p.contains("id")) row["id"] = p["id"];
      out << row.dump() << "\n";
      done_keys.insert(key_of(p));
      ++done;
    }
    out.flush();
    if (!out) throw edgerazor::FormatError(a.out_file, "cannot write (disk full?)");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f tok/s", seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0);
    progress.update(static_cast<int64_t>(done), rate);
  }
  progress.finish();
  std::fprintf(stderr, "edgerazor-generate: %zu prompts (%zu already done) -> %s\n", prompts.size(), skipped,
               a.out_file.c_str());
  return 0;
}

// Interactive chat on stdin: each line is a user turn; the whole conversation is rendered by the
// model's chat template every turn, and the reply streams to stdout. "/reset" forgets the
// conversation, "/exit" or end of input ends it.
int run_chat_loop(Session& s, const Args& a) {
  std::vector<edgerazor::text::ChatMessage> messages;
  if (!s.system_prompt.empty()) messages.push_back({"system", s.system_prompt});
  const size_t first_turn = messages.size();
  const bool terminal = isatty(STDIN_FILENO) == 1;
  if (terminal) std::fprintf(stderr, "chat with %s (/reset forgets, /exit or Ctrl-D ends)\n", a.model_dir.c_str());
  std::string line;
  while (true) {
    if (terminal) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line == "/reset") {
      messages.resize(first_turn);
      continue;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    messages.push_back({"user", line});
    const auto prompt = s.encode_chat(messages);
    if (prompt.size() >= static_cast<size_t>(s.model->config.max_position_embeddings))
      throw ConfigError("", 0, 0, "--chat", "the conversation (" + std::to_string(prompt.size()) +
                                                " tokens) no longer fits the model's " +
                                                std::to_string(s.model->config.max_position_embeddings) +
                                                " positions; /reset starts a new one");
    auto turn = s.gen;  // the reply may use what the conversation leaves of the positions
    turn.max_new_tokens = std::min<int64_t>(turn.max_new_tokens, s.model->config.max_position_embeddings - int64_t(prompt.size()));
    const auto reply = s.complete(prompt, turn, a.stops, stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    messages.push_back({"assistant", reply.text});
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-generate", [&] {
    Args a;
    CLI::App app{"edgerazor-generate: generate text with a Hugging Face model folder"};
    app.add_option("model_dir", a.model_dir, "model folder (config.json + safetensors + tokenizer)")->required();
    auto* prompt = app.add_option("--prompt", a.prompt, "prompt text");
    auto* prompt_ids = app.add_option("--prompt-ids", a.prompt_ids, "prompt as comma-separated token ids (no BOS added)");
    auto* prompts = app.add_option("--prompts", a.prompts_file, "batch mode: JSONL with a \"prompt\" per line");
    app.add_option("--out", a.out_file, "batch mode: JSONL to append {prompt, response} to");
    app.add_option("--batch-size", a.batch_size, "batch mode: prompts decoded together, one forward per step for all")
        ->check(edgerazor::cli::kPositive)
        ->capture_default_str();
    app.add_option("--max-new-tokens", a.max_new_tokens, "tokens to generate")->check(edgerazor::cli::kPositive);
    app.add_option("--temperature", a.temperature, "sampling temperature (0 = greedy)")->check(edgerazor::cli::kNonNegative);
    app.add_option("--top-p", a.top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
    app.add_option("--top-k", a.top_k, "sample among the K most likely tokens only (0 = all)")->check(edgerazor::cli::kNonNegative);
    app.add_option("--repetition-penalty", a.repetition_penalty,
                   "divide logits of tokens already in prompt or output by R (> 1 discourages repeats; as transformers)")
        ->check(edgerazor::cli::kPositive);
    app.add_option("--stop", a.stops, "stop when the output contains STRING (repeatable); it is cut from the output")
        ->type_name("STRING");
    app.add_option("--seed", a.seed, "sampling seed");
    app.add_flag("--greedy", a.greedy, "greedy decoding (argmax)");
    app.add_flag("--print-ids", a.print_ids, "print the generated token ids instead of text");
    app.add_flag("--no-bos", a.no_bos, "do not prepend BOS to text prompts");
    app.add_option("--dtype", a.dtype, "float32 or bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}));
    app.add_option("--device", a.device, "cpu, cuda, cuda:N or auto (a GPU when one is visible)")->capture_default_str();
    app.add_option("--threads", a.threads, "intra-op threads (default: all cores)");
    app.add_option("--quant", a.quant, "quantize with this preset or quantization YAML (PTQ; default: a checkpoint's own)");
    app.add_option("--set", a.sets, "edit the quantization config first, e.g. --set function.w_block_size=64")->type_name("KEY=VALUE");
    app.add_flag("--no-quant", a.no_quant, "generate with a checkpoint's float latent weights instead of its trained quantization");
    app.add_flag("--chat", a.chat, "wrap each prompt as a user turn with the model's chat template");
    app.add_option("--system", a.system_prompt, "system message for --chat");
    prompt->excludes(prompt_ids)->excludes(prompts);
    prompt_ids->excludes(prompts);
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    const bool chat_loop = a.chat && a.prompt.empty() && a.prompt_ids.empty() && a.prompts_file.empty();
    if (!chat_loop && a.prompt.empty() && a.prompt_ids.empty() && a.prompts_file.empty())
      throw ConfigError("", 0, 0, "", "give --prompt, --prompt-ids or --prompts (or --chat alone for an interactive chat)");
    if (!a.prompts_file.empty() && a.out_file.empty()) throw ConfigError("", 0, 0, "--out", "batch mode needs --out FILE");
    {
      auto inputs = edgerazor::files::model_folder_inputs(a.model_dir);
      inputs.push_back(a.prompts_file);
      edgerazor::files::refuse_output_over_inputs(a.out_file, inputs, "--out");
    }
    if (a.threads > 0) edgerazor::runtime::set_threads(a.threads);

    const auto source = edgerazor::cli::resolve_tool_model("edgerazor-generate", a.model_dir, a.quant, a.no_quant, a.sets);
    a.model_dir = source.model_dir;
    Session s;
    edgerazor::io::LoadOptions lo;
    lo.dtype = a.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
    lo.device = edgerazor::runtime::resolve_device(a.device, 0, "--device");
    s.model = edgerazor::io::load_pretrained(a.model_dir, lo);
    if (!source.quant.empty()) {
      const auto report = edgerazor::quant::quantize_for_inference(*s.model, source.quant_config());
      std::fprintf(stderr, "%s", report.to_text().c_str());
    }
    if (a.chat) {
      if (!a.prompt_ids.empty()) throw ConfigError("", 0, 0, "--chat", "works with text prompts, not --prompt-ids");
      s.chat = edgerazor::text::ChatTemplate::from_model_dir(source.tokenizer_dir);
      s.system_prompt = a.system_prompt;
    }
    s.gen.max_new_tokens = a.max_new_tokens;
    s.gen.greedy = a.greedy;
    s.gen.temperature = a.temperature;
    s.gen.top_p = a.top_p;
    s.gen.top_k = a.top_k;
    s.gen.repetition_penalty = a.repetition_penalty;
    s.gen.seed = a.seed;
    s.gen.stop_ids = s.model->config.eos_token_ids;
    s.add_bos = !a.no_bos;
    const bool need_tokenizer = !(a.print_ids && !a.prompt_ids.empty());
    if (need_tokenizer) {
      s.tokenizer = edgerazor::io::load_model_tokenizer(source.tokenizer_dir);
      if (auto eos = s.tokenizer->eos_id();
          eos && std::find(s.gen.stop_ids.begin(), s.gen.stop_ids.end(), *eos) == s.gen.stop_ids.end())
        s.gen.stop_ids.push_back(*eos);
    }
    if (!a.prompts_file.empty()) return run_batch(s, a);
    if (chat_loop) return run_chat_loop(s, a);

    const std::vector<int64_t> prompt_tokens =
        a.prompt_ids.empty() ? s.encode_prompt(a.prompt, s.system_prompt) : parse_ids(a.prompt_ids);
    const auto completion = s.complete(prompt_tokens, s.gen, a.stops);
    if (a.print_ids) {
      std::printf("%s\n", join_ids(completion.ids).c_str());
    } else if (!a.stops.empty()) {  // the prompt's text, then the completion cut at the stop string
      std::printf("%s%s\n", s.tokenizer->decode(to_i32(prompt_tokens)).c_str(), completion.text.c_str());
    } else {
      std::vector<int64_t> all = prompt_tokens;
      all.insert(all.end(), completion.ids.begin(), completion.ids.end());
      std::printf("%s\n", s.tokenizer->decode(to_i32(all)).c_str());
    }
    return 0;
  });
}
