// TEMPORARY stub so dependants link; replaced by the real implementation.
#include "edgerazor/quant/module_types.h"
#include <torch/nn/module.h>
namespace edgerazor::quant {
void register_module_type(const std::string&, ModulePredicate) {}
void register_attention_type(ModulePredicate) {}
std::vector<std::string> module_type_keys() { return {}; }
std::string module_type_key(const torch::nn::Module&) { return ""; }
bool is_attention(const torch::nn::Module&) { return false; }
}  // namespace edgerazor::quant
