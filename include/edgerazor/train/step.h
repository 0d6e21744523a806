// Implements: the pieces of one QAD training step that a custom trainer reuses: batch -> tensors,
// the student/teacher forward feeding DistillObjective, one micro-step (quantized weights scope +
// autocast + backward), the AdamW optimizer with HF's decay groups, the learning-rate update, and
// the held-out loss. Trainer (trainer.h) is a loop over these.
//
// Legend: B batch, T tokens, C hidden, V vocab, L layers.
//
//   auto opt = train::make_adamw(*student, cfg.train);
//   for (int64_t step = 0; step < steps; ++step) {
//     train::set_learning_rate(*opt, cfg.train.lr * config::lr_lambda(...));
//     for (int64_t m = 0; m < accumulation; ++m)
//       auto out = train::forward_backward(models, train::to_tensors(loader.next(), device),
//                                          1.0 / accumulation, precision);   // out.parts to log
//     train::clip_gradients(*student, 1.0, opt.get());  // coefficient folded into opt->step()
//     opt->step(); opt->zero_grad();                   // after the quantized-weights scope ended
//   }
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "edgerazor/config/train_config.h"
#include "edgerazor/data/loader.h"
#include "edgerazor/distill/loss_output.h"
#include "edgerazor/train/precision.h"

namespace torch::optim {
class Optimizer;
class AdamW;
}  // namespace torch::optim
namespace edgerazor::model {
class CausalLMImpl;
}
namespace edgerazor::distill {
class DistillObjectiveImpl;
}

namespace edgerazor::train {

struct StepBatch {
  at::Tensor input_ids;       // (B, T) int64
  at::Tensor labels;          // (B, T) int64, aligned with input_ids (the loss shifts), -100 = none
  at::Tensor attention_mask;  // (B, T) int64, or undefined when every position is a real token
  int64_t real_tokens = 0;    // attention_mask == 1
  int64_t label_tokens = 0;   // labels != -100
};
StepBatch to_tensors(const data::Batch& batch, const at::Device& device);

// What a step runs. The teacher may be null (no distillation: the objective is plain CE).
struct StepModels {
  model::CausalLMImpl* student = nullptr;
  model::CausalLMImpl* teacher = nullptr;
  distill::DistillObjectiveImpl* objective = nullptr;
  bool hidden_states = false;  // some loss compares hidden states (MSE / LAFD)
};

// Student forward (with grad) and teacher forward (NoGradGuard), then the objective. The caller
// holds the quantized-weights scope (and autocast) across this and the backward pass.
distill::LossOutput compute_loss(const StepModels& models, const StepBatch& batch);

// One micro-step: QuantizedWeightsScope + AutocastScope around compute_loss and
// (total * loss_scale).backward(). Returns the unscaled total and parts, detached.
distill::LossOutput forward_backward(const StepModels& models, const StepBatch& batch, double loss_scale,
                                     Precision precision);

// AdamW over the student's unique parameters (tied weights once), two groups like HF: weight decay
// on everything except biases and norm weights (unless decay_norm_and_bias). The caller includes
// <torch/optim/adamw.h> to step and destroy it (kept out of this header: it is heavy).
std::unique_ptr<torch::optim::AdamW> make_adamw(model::CausalLMImpl& student, const config::TrainSection& train);
// HF's grouping, shared with the sharded AdamW (distributed/zero.h): false for biases and norm
// weights unless train.decay_norm_and_bias.
bool takes_weight_decay(const std::string& parameter_name, const config::TrainSection& train);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);
// zero_grad with set_to_none (PyTorch 2's default): drops every gradient after the optimizer step,
// so the next backward allocates them while it frees activations instead of holding both at the
// peak (-120 MiB of the bench step's 60 M bf16 parameters).
void release_gradients(torch::optim::Optimizer& optimizer);

// Global L2 norm of all gradients before clipping; clips to max_norm when max_norm > 0, with the
// coefficient of torch::nn::utils::clip_grad_norm_ (same norm ops, same value). When `optimizer` is a
// FusedAdamW the coefficient is folded into its next step (scale_gradients_next_step: no pass over
// the gradients, and the .grad tensors stay unscaled); otherwise the gradients are multiplied by it.
double clip_gradients(const std::vector<at::Tensor>& params, double max_norm,
                      torch::optim::Optimizer* optimizer = nullptr);
double clip_gradients(model::CausalLMImpl& student, double max_norm, torch::optim::Optimizer* optimizer = nullptr);

// Token-weighted mean CE of the model on the held-out batches of `loader` (eval mode, quantized
// weights when quantizers are attached), at most max_batches micro-batches; restarts the loader.
struct EvalResult {
  double loss = 0;
  double perplexity = 0;
  int64_t tokens = 0;
};
EvalResult evaluate(model::CausalLMImpl& model, data::DataLoader& loader, int64_t max_batches,
                    const at::Device& device, Precision precision, int64_t chunk_size = 256);

}  // namespace edgerazor::train
