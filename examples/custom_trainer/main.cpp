// A hand-written QAD loop from EdgeRazor's pieces, no YAML: a frozen teacher, a student with
// injected W1.58-A8-KV8 quantizers, the EAKLD + LAFD objective, the token-shard loader, AdamW with a
// cosine schedule, and the held-out loss before and after. edgerazor-train's Trainer is the same
// loop plus checkpoints, logs and signals (include/edgerazor/train/trainer.h).
//
//   custom_trainer MODEL_DIR TRAIN_SHARD VALID_SHARD [STEPS]
//   (shards: edgerazor-data encode --tokenizer MODEL_DIR --bos --split auto --in x.txt --out x.bin)
#include <edgerazor/config/quant_presets.h>
#include <edgerazor/config/train_config.h>
#include <edgerazor/data/loader.h>
#include <edgerazor/distill/objective.h>
#include <edgerazor/io/hf_model.h>
#include <edgerazor/quant/inject.h>
#include <edgerazor/train/step.h>
#include <torch/optim/adamw.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace er = edgerazor;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR TRAIN_SHARD VALID_SHARD [STEPS]\n", argv[0]);
    return 2;
  }
  const std::string model_dir = argv[1];
  const int64_t steps = argc > 4 ? std::atoll(argv[4]) : 30;

  // Teacher: frozen, eval mode. Student: the same weights plus quantizers.
  er::model::CausalLM teacher = er::io::load_pretrained(model_dir);
  teacher->eval();
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  er::model::CausalLM student = er::io::load_pretrained(model_dir);
  er::config::QuantConfig quant = er::config::preset("w1.58a8kv8_embint4");
  quant.function.w_block_size = 64;  // stories260K: hidden 64, head_dim 8, MLP width 172
  quant.function.a_block_size = 64;
  quant.function.kv_block_size = 8;
  er::config::QuantOverride down;  // 172-wide rows: one ternary scale per row, A8 per token
  down.name = ".*down_proj";
  down.weight_function = "weight_quant_uniform_symmetric_clip_per_channel_int1_58";
  down.w_block_size = -1;
  down.activation_function = "state_quant_uniform_symmetric_absmax_per_token_int8";
  down.a_block_size = -1;
  quant.overrides.push_back(down);
  const auto report = er::quant::inject(*student, quant);
  std::printf("quantized %zu weights, coverage %.2f%%\n", report.rows.size(), 100 * report.coverage());

  // Objective: 0.2 CE + 4 EAKLD + 1 LAFD (the paper's MobileLLM 1.58-bit weights).
  er::distill::DistillObjectiveOptions objective_options;
  objective_options.loss_task_alpha = 0.2;
  auto kd = er::distill::loss_preset("eakld");
  kd.alpha = 4.0;
  kd.temperature = 1.0;
  kd.confidence_k = 16;
  auto fd = er::distill::loss_preset("lafd");
  fd.alpha = 1.0;
  objective_options.losses = {kd, fd};
  er::distill::DistillObjective objective(objective_options);

  // Data: packed 64-token rows, 8 per step; a held-out loader for the loss.
  er::data::DataConfig data;
  data.sources = {{"train", {argv[2]}, 1.0}};
  data.eval_sources = {{"valid", {argv[3]}, 1.0}};
  data.seq_len = 64;
  er::data::DataLoader loader(data, /*batch_size=*/8);
  er::data::DataLoader valid(data, 8, 0, 1, /*eval=*/true);

  er::config::TrainSection hp;  // paper AdamW defaults, a larger lr for a tiny model
  hp.lr = 2e-3;
  auto optimizer = er::train::make_adamw(*student, hp);
  const er::train::StepModels models{student.get(), teacher.get(), objective.get(), /*hidden_states=*/true};
  const auto precision = er::train::resolve_precision("auto", "cpu");
  const at::Device cpu(at::kCPU);

  const double before = er::train::evaluate(*student, valid, 8, cpu, precision).loss;
  for (int64_t step = 0; step < steps; ++step) {
    er::train::set_learning_rate(*optimizer, hp.lr * er::config::lr_lambda("cosine", step, 2, steps));
    const auto batch = er::train::to_tensors(loader.next(), cpu);
    const auto out = er::train::forward_backward(models, batch, /*loss_scale=*/1.0, precision);  // Q(w) fwd+bwd
    const double grad_norm = er::train::clip_gradients(*student, 1.0, optimizer.get());  // folded into the step
    optimizer->step();  // latent fp32 weights, after the quantized-weights scope ended
    optimizer->zero_grad();
    if (step % 10 == 0 || step + 1 == steps) {
      std::printf("step %lld: loss %.4f", static_cast<long long>(step + 1), out.total.item<double>());
      for (const auto& [name, value] : out.parts)
        if (name.find('.') == std::string::npos) std::printf(" %s %.4f", name.c_str(), value.item<double>());
      std::printf(" grad_norm %.3f\n", grad_norm);
    }
  }
  const double after = er::train::evaluate(*student, valid, 8, cpu, precision).loss;
  std::printf("held-out loss: PTQ %.4f -> QAD %.4f\n", before, after);
  if (!(after < before)) return 1;
  std::printf("custom trainer ok\n");
  return 0;
}
