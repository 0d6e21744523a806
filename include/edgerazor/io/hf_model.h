// Hugging Face model folders: config.json + model.safetensors (or sharded with
// model.safetensors.index.json) + tokenizer files, loaded into / saved from model::CausalLM.
//
// Saved folders load in Hugging Face transformers (AutoModelForCausalLM.from_pretrained): HF
// tensor names, tied models without lm_head.weight, "format": "pt" metadata, torch_dtype set to
// the dtype written.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "edgerazor/io/safetensors.h"
#include "edgerazor/model/transformer.h"
#include "edgerazor/text/tokenizer.h"

namespace edgerazor::io {

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;  // parameters are converted to this dtype
  at::Device device = at::kCPU;
};

// Builds the model from <dir>/config.json and fills every parameter from the checkpoint.
// Throws ConfigError for a bad config and FormatError for a missing, unexpected or mis-shaped
// tensor (naming the tensor and the file) or a corrupt safetensors file.
model::CausalLM load_pretrained(const std::string& dir, const LoadOptions& options = {});

// Copies every tensor of a checkpoint into the model's parameters (same rules as above).
void load_weights(model::CausalLMImpl& model, const std::string& checkpoint_path);

// The checks load_weights makes, one tensor at a time (for exports that stream a checkpoint):
// a zero-copy view of tensor `name`, after checking that it is present, has `shape`, a float
// dtype and only finite values; FormatError naming the tensor and the file otherwise.
// release_checked_pages: the pages read by the check leave the resident set as it goes (a stream
// that reads the tensor again a slice at a time then holds one slice, not the tensor).
at::Tensor checked_tensor_view(const SafetensorsCheckpoint& checkpoint, const std::string& name, at::IntArrayRef shape,
                               const model::ModelConfig& config, const std::string& checkpoint_path,
                               bool release_checked_pages = false);
// FormatError for a checkpoint tensor the config does not describe (not in `used`); a tied
// lm_head.weight and old Llama rotary_emb.inv_freq buffers are ignored, as Hugging Face does.
void refuse_unexpected_tensors(const SafetensorsCheckpoint& checkpoint, const std::set<std::string>& used,
                               const model::ModelConfig& config);

struct SaveOptions {
  // Dtype of the written tensors; Undefined keeps each parameter's own dtype.
  at::ScalarType dtype = at::ScalarType::Undefined;
  uint64_t max_shard_bytes = 0;  // > 0: shard above this size
  // Folder whose tokenizer files (tokenizer.model, tokenizer.json, tokenizer_config.json, ...)
  // are copied into the output; empty: none.
  std::string tokenizer_source_dir;
};

// The model's own parameters under their Hugging Face names, without the tied lm_head.weight
// and without anything an injection attached (e.g. quantizer children).
std::vector<std::pair<std::string, at::Tensor>> checkpoint_tensors(const model::CausalLMImpl& model);

// Writes config.json, the safetensors checkpoint and the tokenizer files into dir.
void save_pretrained(const model::CausalLMImpl& model, const std::string& dir, const SaveOptions& options = {});

// The tokenizer files save_pretrained copies through.
const std::vector<std::string>& tokenizer_file_names();

}  // namespace edgerazor::io
