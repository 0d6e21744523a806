// Helpers shared by the export tests: temp folders, running tools, small model folders.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "fixtures/subprocess.h"
#include "fixtures/temp_dir.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/model/model_config.h"
#include "fixtures/test_paths.h"

namespace export_test {
namespace fs = std::filesystem;

using edgerazor_test::kBin;
using edgerazor_test::kData;
using edgerazor_test::kStories;
inline const std::string kSource = EDGERAZOR_SOURCE_DIR;

using edgerazor_test::Result;
using edgerazor_test::run;
using edgerazor_test::TempDirTest;

inline std::string read_text(const fs::path& p) { return edgerazor_test::read_file(p); }
inline void write_text(const fs::path& p, const std::string& s) { edgerazor_test::write_file(p, s); }

// Ternary weights (block 64; down_proj rows of 172 take block 4) for stories260K: every row
// length of that model is 64 or 172, so no preset's 256-blocks fit.
inline const char* kStoriesTernaryYaml = R"(quantization:
  select:
    target_types: [linear, embedding]
  function:
    weight_function: weight_quant_uniform_symmetric_clip_per_block_int1_58
    w_block_size: 64
  overrides:
    - name: .*down_proj
      w_block_size: 4
)";

// A small random llama (or qwen3) model whose rows are multiples of 256, saved as an HF folder
// with the stories260K SentencePiece tokenizer (vocab 512), for the TQ1_0/TQ2_0 paths.
inline void make_wide_model(const fs::path& dir, const std::string& model_type = "llama", uint64_t seed = 7) {
  const std::string cfg = std::string(R"({"architectures": ["LlamaForCausalLM"], "model_type": ")") + model_type + R"(",
    "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 512, "max_position_embeddings": 256,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": true,
    "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32", "attention_bias": false, "mlp_bias": false})";
  auto config = edgerazor::model::parse_model_config(cfg);
  at::manual_seed(seed);
  edgerazor::model::CausalLM m(config);
  {
    at::NoGradGuard g;
    // Larger weights than the default init so that logits are far from uniform.
    for (auto& p : m->parameters())
      if (p.dim() == 2) p.normal_(0.0, 0.08);
  }
  edgerazor::io::SaveOptions so;
  so.tokenizer_source_dir = kStories;
  edgerazor::io::save_pretrained(*m, dir.string(), so);
}

}  // namespace export_test
