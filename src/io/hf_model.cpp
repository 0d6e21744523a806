// Hugging Face folder load/save for model::CausalLM.
#include "edgerazor/io/hf_model.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <set>

#include "edgerazor/core/error.h"
#include "edgerazor/io/safetensors.h"
#include "edgerazor/io/tensor_io.h"
#include "edgerazor/model/model_config.h"

namespace edgerazor::io {
namespace fs = std::filesystem;

namespace {

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* torch_dtype_name(at::ScalarType s) {
  switch (s) {
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: return "float32";
  }
}

}  // namespace

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.model",  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
      "added_tokens.json", "vocab.json",    "merges.txt",            "generation_config.json",
      "chat_template.jinja"};
  return names;
}

std::vector<std::pair<std::string, at::Tensor>> checkpoint_tensors(const model::CausalLMImpl& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  std::set<const void*> seen;
  for (const auto& item : m.named_modules("", /*include_self=*/true)) {
    const auto& module = *item.value();
    const bool owns_weights = module.as<torch::nn::LinearImpl>() || module.as<torch::nn::EmbeddingImpl>() ||
                              module.as<model::RMSNormImpl>();
    if (!owns_weights) continue;
    for (const auto& p : module.named_parameters(/*recurse=*/false)) {
      if (!p.value().defined() || !seen.insert(p.value().unsafeGetTensorImpl()).second) continue;
      out.emplace_back(item.key().empty() ? p.key() : item.key() + "." + p.key(), p.value());
    }
  }
  return out;
}

at::Tensor checked_tensor_view(const SafetensorsCheckpoint& ckpt, const std::string& name, at::IntArrayRef shape,
                               const model::ModelConfig& config, const std::string& checkpoint_path,
                               bool release_checked_pages) {
  const auto located = ckpt.find(name);
  if (!located)
    throw FormatError(ckpt.files().size() == 1 ? ckpt.files()[0]->path() : checkpoint_path,
                      "tensor '" + name + "' is missing from the checkpoint (architecture " +
                          model::architecture_name(config.architecture) + ")");
  const at::Tensor src = tensor_view(*located->file, *located->entry);
  if (!src.sizes().equals(shape))
    throw FormatError(located->file->path(),
                      "tensor '" + name + "' has wrong shape; expected " + shape_str(shape) + ", got " + shape_str(src.sizes()));
  if (!at::isFloatingType(src.scalar_type()))
    throw FormatError(located->file->path(), "tensor '" + name + "' has integer dtype " +
                                                 dtype_name(located->entry->dtype) + ", expected a float dtype");
  // A NaN or Inf weight makes every output NaN: generate would print token 0 forever and eval a
  // null perplexity. Refuse it here, naming the tensor. Checked as float32 (what the model holds;
  // an F64 value beyond its range is infinite there), a slice at a time so as not to copy it whole.
  const at::Tensor flat = src.reshape({-1});
  constexpr int64_t kSlice = int64_t{1} << 22;
  int64_t bad = 0;
  for (int64_t begin = 0; begin < flat.numel(); begin += kSlice) {
    const at::Tensor part = flat.narrow(0, begin, std::min(kSlice, flat.numel() - begin)).to(at::kFloat);
    bad += part.numel() - at::isfinite(part).sum().item<int64_t>();
    if (release_checked_pages) {
      const uint64_t element = dtype_size(located->entry->dtype);
      located->file->release(*located->entry, static_cast<uint64_t>(begin) * element, static_cast<uint64_t>(part.numel()) * element);
    }
  }
  if (bad > 0)
    throw FormatError(located->file->path(), "tensor '" + name + "' holds " + std::to_string(bad) +
                                                 " NaN or infinite value(s); the checkpoint is damaged");
  return src;
}

void refuse_unexpected_tensors(const SafetensorsCheckpoint& ckpt, const std::set<std::string>& used,
                               const model::ModelConfig& config) {
  for (const auto& name : ckpt.names()) {
    if (used.count(name)) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;  // HF ignores it too
    if (ends_with(name, ".rotary_emb.inv_freq")) continue;                 // old Llama checkpoints
    throw FormatError(ckpt.find(name)->file->path(),
                      "unexpected tensor '" + name + "' for a " + model::architecture_name(config.architecture) +
                          " model (does config.json match the weights?)");
  }
}

void load_weights(model::CausalLMImpl& m, const std::string& checkpoint_path) {
  const auto ckpt = SafetensorsCheckpoint::open(checkpoint_path);
  std::set<std::string> used;
  at::NoGradGuard no_grad;
  for (auto& [name, param] : checkpoint_tensors(m)) {
    param.copy_(checked_tensor_view(ckpt, name, param.sizes(), m.config, checkpoint_path));
    used.insert(name);
  }
  refuse_unexpected_tensors(ckpt, used, m.config);
}

model::CausalLM load_pretrained(const std::string& dir, const LoadOptions& options) {
  if (!fs::is_directory(dir)) throw FormatError(dir, "model folder does not exist");
  model::CausalLM m(model::load_model_config(dir));
  load_weights(*m, dir);
  m->to(options.device, options.dtype);
  return m;
}

void save_pretrained(const model::CausalLMImpl& m, const std::string& dir, const SaveOptions& options) {
  fs::create_directories(dir);
  NamedTensors tensors;
  at::ScalarType written = at::kFloat;
  for (auto& [name, p] : checkpoint_tensors(m)) {
    at::Tensor t = p.detach();
    if (options.dtype != at::ScalarType::Undefined) t = t.to(options.dtype);
    written = t.scalar_type();
    tensors.emplace_back(name, t);
  }
  // Weights first, config last: a folder with a config always has its weights.
  save_safetensors_checkpoint(dir, tensors, options.max_shard_bytes);
  model::ModelConfig config = m.config;
  config.torch_dtype = torch_dtype_name(written);
  if (!options.tokenizer_source_dir.empty() && fs::absolute(options.tokenizer_source_dir) != fs::absolute(dir)) {
    for (const auto& name : tokenizer_file_names()) {
      const fs::path src = fs::path(options.tokenizer_source_dir) / name;
      if (!fs::exists(src)) continue;
      const fs::path tmp = fs::path(dir) / (name + ".tmp");
      fs::copy_file(src, tmp, fs::copy_options::overwrite_existing);
      fs::rename(tmp, fs::path(dir) / name);
    }
  }
  model::save_model_config(config, dir);
}

}  // namespace edgerazor::io
