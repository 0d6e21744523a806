// config.json parsing: the real stories260K config, Qwen2/Qwen3 specifics, and clear errors.
#include "edgerazor/model/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "edgerazor/core/error.h"
#include "fixtures/test_paths.h"

namespace {
using edgerazor::ConfigError;
using namespace edgerazor::model;
using ::testing::HasSubstr;

const std::string kData = EDGERAZOR_SHARED_DATA_DIR;

std::string qwen3_json(const std::string& extra = "") {
  return R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
    "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "rope_theta": 1000000, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "attention_bias": false,
    "max_window_layers": 28, "sliding_window": null, "use_sliding_window": false,
    "bos_token_id": 151643, "eos_token_id": 151645)" +
         extra + "}";
}

void expect_config_error(const std::string& text, const std::vector<std::string>& parts) {
  try {
    parse_model_config(text, "cfg/config.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cfg/config.json"));
    for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
  }
}

TEST(ModelConfig, StoriesLlama) {
  const ModelConfig c = load_model_config(kData + "/models/stories260K-hf");
  EXPECT_EQ(c.architecture, Architecture::kLlama);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
}

TEST(ModelConfig, Qwen3HeadDimIndependentOfHidden) {
  const ModelConfig c = parse_model_config(qwen3_json());
  EXPECT_EQ(c.architecture, Architecture::kQwen3);
  EXPECT_EQ(c.head_dim, 128);  // not 1024 / 16
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
}

TEST(ModelConfig, Qwen2HasQkvBiasOnly) {
  const ModelConfig c = parse_model_config(R"({"model_type": "qwen2", "vocab_size": 100, "hidden_size": 32,
      "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "eos_token_id": [3, 4], "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}})");
  EXPECT_EQ(c.architecture, Architecture::kQwen2);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{3, 4}));
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(ModelConfig, RoundTripKeepsUnknownKeys) {
  ModelConfig c = parse_model_config(qwen3_json(R"(, "custom_key": "kept")"));
  c.torch_dtype = "float32";
  const auto j = nlohmann::json::parse(model_config_to_json(c));
  EXPECT_EQ(j["custom_key"], "kept");
  EXPECT_EQ(j["torch_dtype"], "float32");
  const ModelConfig back = parse_model_config(j.dump());
  EXPECT_EQ(back.head_dim, 128);
  EXPECT_EQ(back.num_key_value_heads, 8);
  EXPECT_EQ(back.eos_token_ids, c.eos_token_ids);
}

TEST(ModelConfig, ClearErrors) {
  expect_config_error(R"({"model_type": "gpt2", "vocab_size": 10})", {"model_type", "unsupported architecture 'gpt2'"});
  expect_config_error(R"({"vocab_size": 10})", {"model_type", "missing"});
  expect_config_error(qwen3_json(R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8.0})"),
                      {"rope_scaling", "'llama3' is not supported"});
  expect_config_error(qwen3_json(R"(, "rope_scaling": {"type": "yarn", "factor": 4.0})"), {"rope_scaling", "'yarn'"});
  expect_config_error(R"({"model_type": "llama", "vocab_size": "big"})", {"vocab_size", "expected an integer"});
  expect_config_error(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8})", {"intermediate_size", "missing"});
  expect_config_error(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3})",
                      {"num_key_value_heads", "does not divide"});
  expect_config_error(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 2, "hidden_act": "gelu"})",
                      {"hidden_act", "gelu"});
  expect_config_error(qwen3_json(R"(, "use_sliding_window": true)"), {"use_sliding_window"});
  // JSON syntax errors carry line and column.
  expect_config_error("{\n  \"model_type\": \"llama\",\n  \"vocab_size\": ,\n}", {"cfg/config.json:3:", "not valid JSON"});
  // A number too large for a double (found by the model_config fuzzer; was nlohmann's out_of_range).
  expect_config_error(R"({"model_type": "llama", "vocab_size": 1e999})", {"not valid JSON", "number overflow"});
  EXPECT_THROW(load_model_config("/nonexistent/dir"), ConfigError);
}

}  // namespace
