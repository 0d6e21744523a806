// edgerazor-generate: text generation from a Hugging Face model folder.
//
//   edgerazor-generate MODEL_DIR --prompt "Once upon a time" [--max-new-tokens N]
//                      [--temperature T --top-p P --seed S] [--greedy]
//   edgerazor-generate MODEL_DIR --prompt-ids 1 --greedy --print-ids      # exact token work
//   edgerazor-generate MODEL_DIR --prompts prompts.jsonl --out generated.jsonl   # batch, resumable
//   edgerazor-generate MODEL_DIR --quant w1.58a8kv8 --prompt "..."   # post-training quantized
//   edgerazor-generate QWEN_DIR --chat --prompt "Hi" [--system "..."]   # model's chat template
//
// Batch mode reads one JSON object per line with "prompt" (and optionally "id"), and appends
// {"prompt", "response"[, "id"]} lines; prompts already in the output are skipped, so an
// interrupted run continues where it stopped.
#include <ATen/Context.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "edgerazor/runtime/device.h"
#include "edgerazor/config/quant_presets.h"
#include "edgerazor/core/cli.h"
#include "model_source.h"
#include "tool_flags.h"
#include "edgerazor/core/error.h"
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
  int64_t max_new_tokens = 128;
  double temperature = 0.8, top_p = 0.95;
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

  std::vector<int64_t> encode_prompt(const std::string& text) const {
    std::vector<int64_t> ids;
    if (chat) {  // the template writes any BOS itself
      std::vector<edgerazor::text::ChatMessage> messages;
      if (!system_prompt.empty()) messages.push_back({"system", system_prompt});
      messages.push_back({"user", text});
      const auto rendered = edgerazor::text::render_chat(*chat, messages, /*add_generation_prompt=*/true);
      for (int32_t id : tokenizer->encode(rendered.text)) ids.push_back(id);
      return ids;
    }
    if (add_bos && tokenizer->add_bos_by_default() && tokenizer->bos_id()) ids.push_back(*tokenizer->bos_id());
    for (int32_t id : tokenizer->encode(text)) ids.push_back(id);
    return ids;
  }
  std::vector<int64_t> run(const std::vector<int64_t>& prompt) {
    const int64_t V = model->config.vocab_size;
    for (int64_t id : prompt)
      if (id < 0 || id >= V) throw ConfigError("", 0, 0, "prompt", "token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(V) + ")");
    return edgerazor::model::generate(*model, prompt, gen);
  }
  // The completion without a trailing stop token.
  std::string response_text(std::vector<int64_t> ids) const {
    if (!ids.empty() && std::find(gen.stop_ids.begin(), gen.stop_ids.end(), ids.back()) != gen.stop_ids.end()) ids.pop_back();
    return tokenizer->decode(to_i32(ids));
  }
};

void progress_bar(size_t done, size_t total, double seconds, int64_t tokens) {
  const int width = 30;
  const int filled = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r[%s%s] %zu/%zu prompts, %.1f tok/s", std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(), done, total, seconds > 0 ? tokens / seconds : 0.0);
  std::fflush(stderr);
}

int run_batch(Session& s, const Args& a) {
  std::ifstream in(a.prompts_file);
  if (!in) throw edgerazor::FormatError(a.prompts_file, "cannot open prompts file");
  std::vector<json> prompts;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      throw ConfigError(a.prompts_file, line_no, 0, "", std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      throw ConfigError(a.prompts_file, line_no, 0, "prompt", "each line needs a string \"prompt\"");
    prompts.push_back(j);
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
  for (const auto& p : prompts) {
    if (done_keys.count(key_of(p))) {
      ++done;
      ++skipped;
      continue;
    }
    const std::string text = p["prompt"].get<std::string>();
    const auto ids = s.run(s.encode_prompt(text));
    tokens += static_cast<int64_t>(ids.size());
    json row = {{"prompt", text}, {"response", s.response_text(ids)}};
    if (p.contains("id")) row["id"] = p["id"];
    out << row.dump() << "\n";
    out.flush();
    done_keys.insert(key_of(p));
    ++done;
    progress_bar(done, prompts.size(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), tokens);
  }
  std::fprintf(stderr, "\nedgerazor-generate: %zu prompts (%zu already done) -> %s\n", prompts.size(), skipped,
               a.out_file.c_str());
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
    app.add_option("--max-new-tokens", a.max_new_tokens, "tokens to generate")->check(CLI::PositiveNumber);
    app.add_option("--temperature", a.temperature, "sampling temperature (0 = greedy)")->check(CLI::NonNegativeNumber);
    app.add_option("--top-p", a.top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
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
    if (a.prompt.empty() && a.prompt_ids.empty() && a.prompts_file.empty())
      throw ConfigError("", 0, 0, "", "give --prompt, --prompt-ids or --prompts");
    if (!a.prompts_file.empty() && a.out_file.empty()) throw ConfigError("", 0, 0, "--out", "batch mode needs --out FILE");
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

    const std::vector<int64_t> prompt_tokens = a.prompt_ids.empty() ? s.encode_prompt(a.prompt) : parse_ids(a.prompt_ids);
    const auto ids = s.run(prompt_tokens);
    if (a.print_ids) {
      std::printf("%s\n", join_ids(ids).c_str());
    } else {
      std::vector<int64_t> all = prompt_tokens;
      all.insert(all.end(), ids.begin(), ids.end());
      std::string text = s.tokenizer->decode(to_i32(all));
      std::printf("%s\n", text.c_str());
    }
    return 0;
  });
}
