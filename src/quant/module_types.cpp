#include "edgerazor/quant/module_types.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <mutex>
#include <utility>

namespace edgerazor::quant {
namespace {

struct Registry {
  std::mutex mutex;
  std::vector<std::pair<std::string, ModulePredicate>> user_types;     // checked first
  std::vector<std::pair<std::string, ModulePredicate>> builtin_types;
  std::vector<ModulePredicate> attention_types;
  std::vector<std::function<int64_t(const torch::nn::Module&)>> attention_head_dims;  // parallel to it

  Registry() {
    builtin_types = {
        {"linear", [](const torch::nn::Module& m) { return m.as<torch::nn::LinearImpl>() != nullptr; }},
        {"embedding", [](const torch::nn::Module& m) { return m.as<torch::nn::EmbeddingImpl>() != nullptr; }},
        {"conv1d", [](const torch::nn::Module& m) { return m.as<torch::nn::Conv1dImpl>() != nullptr; }},
        {"conv2d", [](const torch::nn::Module& m) { return m.as<torch::nn::Conv2dImpl>() != nullptr; }},
        {"conv3d", [](const torch::nn::Module& m) { return m.as<torch::nn::Conv3dImpl>() != nullptr; }},
        {"multiheadattention",
         [](const torch::nn::Module& m) { return m.as<torch::nn::MultiheadAttentionImpl>() != nullptr; }},
    };
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_module_type(const std::string& key, ModulePredicate is_instance) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (auto& entry : r.user_types) {
    if (entry.first == key) {
      entry.second = std::move(is_instance);
      return;
    }
  }
  r.user_types.emplace_back(key, std::move(is_instance));
}

void register_attention_type(ModulePredicate is_attention, std::function<int64_t(const torch::nn::Module&)> head_dim) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.attention_types.push_back(std::move(is_attention));
  r.attention_head_dims.push_back(std::move(head_dim));
}

std::vector<std::string> module_type_keys() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> keys;
  for (const auto& [key, pred] : r.builtin_types) keys.push_back(key);
  for (const auto& [key, pred] : r.user_types)
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  keys.push_back("kv_cache");
  return keys;
}

std::string module_type_key(const torch::nn::Module& module) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& [key, pred] : r.user_types)
    if (pred(module)) return key;
  for (const auto& [key, pred] : r.builtin_types)
    if (pred(module)) return key;
  return "";
}

bool is_attention(const torch::nn::Module& module) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& pred : r.attention_types)
    if (pred(module)) return true;
  return false;
}

int64_t attention_head_dim(const torch::nn::Module& module) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (size_t i = 0; i < r.attention_types.size(); ++i)
    if (r.attention_types[i](module)) return r.attention_head_dims[i] ? r.attention_head_dims[i](module) : 0;
  return 0;
}

}  // namespace edgerazor::quant
