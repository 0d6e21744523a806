// edgerazor-train: quantization-aware distillation (or plain CE training) from one YAML config.
//
//   edgerazor-train CONFIG [--check] [--set key=value ...] [--resume] [--threads N] [--quiet]
//                          [--nproc-per-node N]
//
// Data-parallel: --nproc-per-node N (default: distributed.nproc_per_node) re-executes this tool
// as N ranks on this machine (distributed::relaunch_as_workers); a process started by a launcher (RANK,
// WORLD_SIZE, ... set) joins the job through distributed::make_gradient_sync and plugs it into the
// trainer as its train::GradientSync (rank 0 alone writes checkpoints, metrics and the summary).
//
// --check validates the config (files included) and prints it fully resolved (presets expanded,
// every default written out) without loading a model. Progress lines go to stdout, and a last
// line of JSON sums the run up: {"run_dir", "steps", "initial_eval_loss" (PTQ), "final_eval_loss",
// "teacher_eval_loss", "tokens_per_s", "interrupted", "last_checkpoint"}.
// Exit codes: 0 done (also after SIGINT/SIGTERM, which write a checkpoint first: continue with
// --resume), 2 bad config / flags / files, 1 anything else (e.g. a NaN loss).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <iostream>

#include "edgerazor/config/train_config.h"
#include "edgerazor/core/cli.h"
#include "tool_flags.h"
#include "edgerazor/core/error.h"
#include "edgerazor/distributed/launch.h"
#include "edgerazor/distributed/trainer_sync.h"
#include "edgerazor/runtime/device.h"
#include "edgerazor/runtime/runtime.h"
#include "edgerazor/train/preflight.h"
#include "edgerazor/train/trainer.h"

int main(int argc, char** argv) {
  return edgerazor::cli::run("edgerazor-train", [&] {
    std::string config_path, device;
    std::vector<std::string> sets;
    bool check = false, resume = false, quiet = false;
    int threads = 0, nproc_per_node = 0;
    CLI::App app{"edgerazor-train: distill a quantized student from a teacher, driven by a YAML config"};
    app.add_option("config", config_path, "run config (YAML)")->required();
    app.add_flag("--check", check, "validate and print the resolved config, then exit");
    app.add_option("--set", sets, "override a config value before validation, e.g. --set train.lr=1e-5")
        ->type_name("KEY=VALUE");
    app.add_flag("--resume", resume, "continue from the newest complete checkpoint of the run folder");
    app.add_option("--threads", threads, "intra-op threads (default: all cores)")->check(edgerazor::cli::kPositive);
    app.add_flag("--quiet", quiet, "no progress lines");
    app.add_option("--device", device, "cpu, cuda (cuda:LOCAL_RANK per rank), cuda:N or auto (same as --set train.device=...)");
    app.add_option("--nproc-per-node", nproc_per_node, "data-parallel ranks to launch here (default: distributed.nproc_per_node)")
        ->check(edgerazor::cli::kPositive);
    if (auto done = edgerazor::cli::parse_flags(app, argc, argv)) return *done;
    if (threads > 0) edgerazor::runtime::set_threads(threads);

    std::vector<edgerazor::config::Override> overrides;
    for (const auto& s : sets) overrides.push_back(edgerazor::config::parse_override(s));
    if (!device.empty()) overrides.push_back(edgerazor::config::parse_override("train.device=" + device));
    const auto config = edgerazor::config::load_train_config(config_path, overrides);
    if (check) {
      edgerazor::train::check_config_against_models(config);  // Trainer::setup runs it for a real run
      std::cout << "# " << config_path << ": valid; resolved config:\n" << edgerazor::config::to_yaml(config);
      return 0;
    }

    const int nproc = nproc_per_node > 0 ? nproc_per_node : static_cast<int>(config.distributed.nproc_per_node);
    // Each rank holds both models and computes on its own core (CPU) or GPU: more ranks than that
    // only share them, and a thousand ranks ran the machine out of memory without a word.
    if (nproc > 1 && std::getenv("WORLD_SIZE") == nullptr) {
      const bool on_gpu = config.train.device.rfind("cuda", 0) == 0 ||
                          (config.train.device == "auto" && edgerazor::runtime::cuda_device_count() > 0);
      const int slots = on_gpu ? edgerazor::runtime::cuda_device_count() : edgerazor::runtime::available_cores();
      if (nproc > slots)
        throw edgerazor::ConfigError("", 0, 0, nproc_per_node > 0 ? "--nproc-per-node" : "distributed.nproc_per_node",
                                     std::to_string(nproc) + " ranks, but this machine has " + std::to_string(slots) +
                                         (on_gpu ? " GPU(s)" : " CPU cores for them") + "; use at most " +
                                         std::to_string(slots));
    }
    if (const auto code = edgerazor::distributed::relaunch_as_workers(nproc, argc, argv)) return *code;  // the launcher
    auto run_config = config;
    edgerazor::train::TrainerOptions options;
    options.resume = resume;
    options.quiet = quiet;
    const auto sync = edgerazor::distributed::make_gradient_sync(config.distributed.backend, config.train.device);
    if (sync) {  // one rank of a data-parallel job
      options.gradient_sync = sync;
      run_config.train.device = sync->device();  // cuda:LOCAL_RANK on GPUs
    }
    edgerazor::train::Trainer trainer(run_config, options);
    trainer.setup();
    const auto summary = trainer.train();
    trainer.cleanup();

    const auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    if (sync && sync->rank() != 0) return 0;  // rank 0 prints the summary
    nlohmann::ordered_json j;
    j["run_dir"] = summary.run_dir;
    j["steps"] = summary.steps;
    j["total_steps"] = summary.total_steps;
    j["initial_eval_loss"] = num(summary.initial_eval_loss);
    j["final_eval_loss"] = num(summary.final_eval_loss);
    j["teacher_eval_loss"] = num(summary.teacher_eval_loss);
    j["tokens_per_s"] = summary.tokens_per_second;
    j["interrupted"] = summary.interrupted;
    j["last_checkpoint"] = summary.last_checkpoint;
    std::cout << j.dump() << std::endl;
    return 0;
  });
}
