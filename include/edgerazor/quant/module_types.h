// The type keys that select.target_types / exclude_types / overrides[].type understand
// (spec quantization.md §5.2), mapped to predicates on torch::nn modules.
//
// Built in: linear, embedding, conv1d, conv2d, conv3d, multiheadattention. The meta-key
// kv_cache selects modules registered with register_attention_type(): the attention blocks
// whose keys/values get KV8 fake quantization. Aliases from the paper era: qwen3attention,
// llamaattention, qwen2attention -> kv_cache.
//
// A user's own module type (with a registered "weight" parameter) joins with
// register_module_type("mylayer", [](const torch::nn::Module& m) { return m.as<MyLayerImpl>(); });
#pragma once

#include <functional>
#include <string>
#include <cstdint>
#include <vector>

namespace torch::nn {
class Module;
}

namespace edgerazor::quant {

using ModulePredicate = std::function<bool(const torch::nn::Module&)>;

// Adds (or replaces) a type key. Its modules are weight-quantizable if they have a "weight".
void register_module_type(const std::string& key, ModulePredicate is_instance);
// Adds an attention type: its modules are what the kv_cache key selects. head_dim, when given,
// tells the planner each module's head dimension, so a kv_block_size that does not divide it is
// refused when the quantizers are injected rather than at the first forward.
void register_attention_type(ModulePredicate is_attention,
                             std::function<int64_t(const torch::nn::Module&)> head_dim = nullptr);

// Known keys, in registration order, kv_cache included.
std::vector<std::string> module_type_keys();
// The key a module is an instance of ("" when none). kv_cache is returned for attention types.
std::string module_type_key(const torch::nn::Module& module);
bool is_attention(const torch::nn::Module& module);
// The head dimension of an attention module (0 when its type did not say).
int64_t attention_head_dim(const torch::nn::Module& module);

}  // namespace edgerazor::quant
