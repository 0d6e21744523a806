// Implements: ZeroOptimizer, sharded data parallel over c10d (ZeRO stages 1-3, after DeepSpeed),
// built only on the ProcessGroup's all_gather / reduce_scatter / all_reduce. It replaces the
// trainer's AdamW and gradient all-reduce when `distributed.sharding` is not none.
//
// Layout. The student's trainable parameters form units: one per decoder layer
// ("model.layers.<i>.*") and one "outer" unit (embeddings, final norm, lm_head; a tied
// embedding once). A unit's parameters become views of one flat fp32 buffer, padded to a multiple
// of the world size W; rank r owns elements [r S, (r + 1) S) of it (S = padded / W). The layout
// does not depend on W except for the padding, so a checkpoint re-shards onto any world size.
//
//   stage       optimizer (1)           gradients (2)                   parameters (3)
//   weights     full on every rank      full on every rank              this rank's shard; a layer's
//                                                                       flat buffer is gathered just
//                                                                       before its forward and its
//                                                                       backward recompute (the next
//                                                                       one prefetched), freed after
//   gradients   full through backward,  each layer's reduce-scattered   as stage 2
//               reduce-scattered after  as soon as backward produced
//                                       it, then freed
//   AdamW m, v  shard                   shard                           shard
//
// The latent fp32 weights are the model's parameters and the optimizer's master copy at once (no
// bf16 working copy), so the quantizers always see the full gathered latent weights and fake
// quantization is unchanged. Stage 3 recomputes every layer in backward (gradient checkpointing is
// switched on) because that is when the layer's weights are present again; the outer unit is
// gathered for the whole step. The teacher is kept whole (forward only, bf16).
//
// AdamW on a shard is the same one-pass element update FusedAdamW runs (train/adamw_kernel.h),
// with HF's decay groups; clipping uses the global norm over all shards (all_reduce). Gradients
// are averaged over ranks like DDP's, so a run equals the unsharded data-parallel one within
// fp32 round-off (the reduction order differs).
//
//   distributed::ZeroOptimizer zero(group, *student, cfg.train, ShardingStage::gradients);
//   loop: zero.begin_step();  forward_backward(...) x GA;  zero.finish_backward();
//         norm = zero.clip_gradients(max_norm);  zero.step(lr);
//   eval / save: zero.materialize(); ...; zero.release_all();
//
// Assumption (as DDP's): every rank runs the same graph, so the collectives launched from
// gradient hooks come in the same order on every rank.
#pragma once

#include <ATen/core/ATen_fwd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgerazor/config/train_config.h"
#include "edgerazor/distributed/process_group.h"

namespace edgerazor::model {
class CausalLMImpl;
}

namespace edgerazor::distributed {

enum class ShardingStage { none = 0, optimizer = 1, gradients = 2, parameters = 3 };
// "none" | "optimizer" | "gradients" | "parameters"; ConfigError naming distributed.sharding otherwise.
ShardingStage parse_sharding(const std::string& name);
const char* sharding_name(ShardingStage stage);

struct ZeroStats {
  int64_t units = 0;
  int64_t parameters = 0;      // trainable elements (all units, unpadded)
  int64_t shard_elements = 0;  // this rank's elements (all units, padded)
};

class ZeroOptimizer {
 public:
  // Flattens the student's trainable parameters into units (see above) and, for stage 3, keeps
  // only this rank's shard of each. The student must hold the same weights on every rank (the
  // same folder or checkpoint loaded everywhere); every rank must call this together. Destroying
  // it in stage 3 leaves the layers' weights released: materialize() first to keep the model.
  ZeroOptimizer(ProcessGroup& group, model::CausalLMImpl& student, const config::TrainSection& train,
                ShardingStage stage);
  ~ZeroOptimizer();
  ZeroOptimizer(const ZeroOptimizer&) = delete;
  ZeroOptimizer& operator=(const ZeroOptimizer&) = delete;

  ShardingStage stage() const;
  // Before the step's first forward (stage 3: gathers the outer unit).
  void begin_step();
  // After the last micro-batch's backward: every gradient averaged over ranks into this rank's
  // shard; the parameters' .grad are released (collective).
  void finish_backward();
  // Global L2 norm of the gradients before clipping; when above max_norm the next step() reads
  // them scaled to max_norm (torch's clip_grad_norm_ coefficient, folded into the update rather
  // than a pass over the gradients; max_norm <= 0: norm only, of the unscaled gradients). Collective.
  double clip_gradients(double max_norm);
  // AdamW on this rank's shard with learning rate lr; then the updated weights are all-gathered
  // (stages 1-2) or the step's gathered weights released (stage 3). Collective.
  void step(double lr);
  int64_t adam_steps() const;

  // Stage 3: every weight present (held until release_all), for evaluation, downstream tasks and
  // checkpoints; no-op otherwise. Collective.
  void materialize();
  void release_all();

  // Checkpoint: this rank's AdamW moments as <dir>/trainer_state/zero/rank_<r>.safetensors, and on
  // rank 0 the layout <dir>/trainer_state/zero/layout.json. Every rank writes its own file (the
  // folder must be shared); the weights themselves are the checkpoint's model.safetensors.
  void save(const std::string& checkpoint_dir) const;
  // Rank 0, before committing a checkpoint: every rank's file and the layout are in `dir`
  // (FormatError naming the first missing one: e.g. ranks on other nodes without a shared folder).
  void check_saved(const std::string& checkpoint_dir) const;
  // Restores moments and step count from a checkpoint written by any world size with the same
  // units; FormatError naming the file when the layout does not match this model.
  void load(const std::string& checkpoint_dir);

  const ZeroStats& stats() const;
  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace edgerazor::distributed
