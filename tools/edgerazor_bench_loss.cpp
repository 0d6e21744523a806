// edgerazor-bench-loss: time and peak memory of CE + EAKLD forward+backward, chunked (fused
// autograd function, logits recomputed per chunk in backward) vs naive (plain autograd on whole
// fp32-upcast logits). Both run through DistillObjective; chunk_size 0 selects the naive path.
//
//   edgerazor-bench-loss --batch 2 --tokens 1024 --vocab 151936 --hidden 1024 --dtype bf16 \
//                        --input hidden --mode chunked --chunk 256 --repeat 2
//
// --input hidden: student/teacher give final hidden (B, T, C) + lm_head weight (V, C) (what the
// trainer does; the naive path materialises the logits with one matmul). --input logits: whole
// (B, T, V) logits are given (the naive path's memory is then dominated by fp32 upcasts).
// Peak memory is the process's peak resident set (VmHWM, reset through /proc/self/clear_refs
// before the measured step) minus the resident set with the inputs allocated: the extra memory
// one step needs, gradients of the inputs included. Prints one JSON line per repeat.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "edgerazor/core/cli.h"
#include "tool_flags.h"
#include "edgerazor/distill/objective.h"
#include "edgerazor/runtime/process_memory.h"
#include "edgerazor/runtime/runtime.h"

namespace {

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "bf16") return at::kBFloat16;
  if (s == "fp32") return at::kFloat;
  throw std::invalid_argument("--dtype must be bf16 or fp32, got '" + s + "'");
}

}  // namespace

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-bench-loss", [&] {
    namespace d = edgerazor::distill;
    CLI::App app{"Benchmark CE + EAKLD forward+backward: chunked vs naive"};
    int64_t batch = 2, tokens = 1024, vocab = 151936, hidden = 1024, chunk = 256;
    int repeat = 2, threads = 0;
    std::string dtype_name = "bf16", mode = "chunked", input = "hidden";
    app.add_option("--batch", batch, "B");
    app.add_option("--tokens", tokens, "T");
    app.add_option("--vocab", vocab, "V");
    app.add_option("--hidden", hidden, "C (for --input hidden)");
    app.add_option("--dtype", dtype_name, "bf16 | fp32 (inputs and lm_head)");
    app.add_option("--mode", mode, "chunked | naive")->check(CLI::IsMember({"chunked", "naive"}));
    app.add_option("--input", input, "hidden | logits")->check(CLI::IsMember({"hidden", "logits"}));
    app.add_option("--chunk", chunk, "tokens per chunk (chunked mode)");
    app.add_option("--repeat", repeat, "measured steps (after one warm-up)");
    app.add_option("--threads", threads, "intra-op threads (default: all cores)");
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    if (threads > 0) edgerazor::runtime::set_threads(threads);
    const auto dtype = parse_dtype(dtype_name);

    at::manual_seed(0);
    const auto opts = at::TensorOptions().dtype(dtype);
    d::ModelOutputs student, teacher;
    at::Tensor leaf_a, leaf_b;   // student tensors that receive gradients
    if (input == "hidden") {
      leaf_a = at::randn({batch, tokens, hidden}, opts).requires_grad_(true);
      leaf_b = (at::randn({vocab, hidden}, opts) * 0.05).requires_grad_(true);
      student.final_hidden = leaf_a;
      student.lm_head_weight = leaf_b;
      teacher.final_hidden = at::randn({batch, tokens, hidden}, opts);
      teacher.lm_head_weight = at::randn({vocab, hidden}, opts) * 0.05;
    } else {
      leaf_a = (at::randn({batch, tokens, vocab}, opts) * 2).requires_grad_(true);
      student.logits = leaf_a;
      teacher.logits = at::randn({batch, tokens, vocab}, opts) * 2;
    }
    auto labels = at::randint(0, vocab, {batch, tokens}, at::kLong);
    labels.narrow(1, 0, tokens / 4).fill_(-100);   // a prompt that is not trained

    d::DistillObjectiveOptions o;
    o.loss_task_alpha = 0.1;                        // paper Qwen3 setting
    auto kd = d::loss_preset("eakld");
    kd.alpha = 2.0;
    kd.temperature = 1.0;
    kd.confidence_k = 16;
    o.losses = {kd};
    o.chunk_size = mode == "naive" ? 0 : chunk;
    d::DistillObjective objective(o);

    const double base_rss = edgerazor::runtime::resident_mib();
    for (int step = 0; step <= repeat; ++step) {
      leaf_a.mutable_grad() = at::Tensor();
      if (leaf_b.defined()) leaf_b.mutable_grad() = at::Tensor();
      const double rss_before = edgerazor::runtime::resident_mib();
      const bool peak_ok = edgerazor::runtime::reset_peak_resident();
      const auto t0 = std::chrono::steady_clock::now();
      auto out = objective(student, teacher, labels);
      const auto t1 = std::chrono::steady_clock::now();
      out.total.backward();
      const auto t2 = std::chrono::steady_clock::now();
      const double peak = edgerazor::runtime::peak_resident_mib();
      nlohmann::json j;
      j["step"] = step;
      j["warmup"] = step == 0;
      j["mode"] = mode;
      j["input"] = input;
      j["dtype"] = dtype_name;
      j["B"] = batch;
      j["T"] = tokens;
      j["V"] = vocab;
      j["C"] = input == "hidden" ? hidden : 0;
      j["chunk"] = mode == "naive" ? 0 : chunk;
      j["threads"] = at::get_num_threads();
      j["forward_s"] = std::chrono::duration<double>(t1 - t0).count();
      j["backward_s"] = std::chrono::duration<double>(t2 - t1).count();
      j["total_s"] = std::chrono::duration<double>(t2 - t0).count();
      j["inputs_rss_mib"] = base_rss;
      j["peak_extra_mib"] = peak_ok ? peak - rss_before : -1.0;
      j["loss"] = out.total.item<double>();
      std::cout << j.dump() << std::endl;
    }
    return 0;
  });
}
