// GGUF export from exact codes (rules in the header).
#include "edgerazor/export/gguf_export.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/core/error.h"
#include "edgerazor/export/gguf.h"
#include "edgerazor/export/gguf_names.h"
#include "edgerazor/export/gguf_tokenizer.h"

namespace edgerazor::exporter {
namespace fs = std::filesystem;

namespace {

constexpr uint32_t kFileTypeF32 = 0, kFileTypeF16 = 1, kFileTypeQ4_0 = 2, kFileTypeQ8_0 = 7, kFileTypeTQ1_0 = 36,
                   kFileTypeTQ2_0 = 37;

std::vector<uint8_t> float_bytes(const at::Tensor& value, GgmlType type) {
  const at::Tensor f = value.detach().to(at::kCPU).to(at::kFloat).contiguous();
  const float* p = f.data_ptr<float>();
  const size_t n = static_cast<size_t>(f.numel());
  std::vector<uint8_t> out;
  if (type == GgmlType::kF32) {
    out.resize(n * 4);
    std::memcpy(out.data(), p, n * 4);
  } else {
    out.resize(n * 2);
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = type == GgmlType::kBF16 ? fp32_to_bf16(p[i]) : fp32_to_fp16(p[i]);
      out[2 * i] = static_cast<uint8_t>(h & 0xff);
      out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
    }
  }
  return out;
}

bool is_ternary(const quant::QuantSpec& s) {
  return s.rule == config::QuantRule::kTernaryAbsmean || s.rule == config::QuantRule::kTernaryAbsmax;
}

std::vector<GgmlType> candidates(const quant::QuantizedTensor& q, const std::string& type) {
  if (is_ternary(q.spec)) {  // an explicit type is that type or an error (write_gguf), never another one
    if (type == "tq1_0") return {GgmlType::kTQ1_0};
    if (type == "tq2_0") return {GgmlType::kTQ2_0};
    if (type == "q4_0") return {GgmlType::kQ4_0};
    return {GgmlType::kTQ2_0, GgmlType::kQ4_0};
  }
  const bool int4 = q.spec.rule == config::QuantRule::kMixedTernaryInt4 || q.spec.rule == config::QuantRule::kAsymmetricMax ||
                    (q.spec.rule == config::QuantRule::kSymmetricAbsmax && q.spec.qmax <= 7);
  if (int4) return {GgmlType::kQ4_0};
  return {GgmlType::kQ8_0};
}

// Dense (N, K) codes and per-element fp32 scales of a quantized tensor.
void dense_codes(const quant::QuantizedTensor& q, at::Tensor& codes, at::Tensor& scales) {
  const at::Tensor s = q.scales.to(at::kFloat).expand(q.codes.sizes());
  codes = quant::from_blocks(q.codes, q.shape);
  scales = quant::from_blocks(s.contiguous(), q.shape);
  const int64_t rows = q.shape.empty() ? 1 : q.shape[0];
  codes = codes.reshape({rows, -1}).contiguous();
  scales = scales.reshape({rows, -1}).contiguous();
}

// Why a block type cannot hold (codes, scales), or "" when it can.
std::string misfit(GgmlType type, const at::Tensor& codes, const at::Tensor& scales) {
  const int64_t k = codes.size(1), bs = ggml_block_size(type);
  if (k % bs != 0) return "row length " + std::to_string(k) + " is not a multiple of " + std::to_string(bs);
  const at::Tensor s3 = scales.reshape({scales.size(0), k / bs, bs});
  if (!at::equal(s3, s3.select(2, 0).unsqueeze(2).expand_as(s3)))
    return "its scales change inside " + std::to_string(bs) + "-weight runs of a row";
  if (codes.lt(ggml_min_code(type)).any().item<bool>() || codes.gt(ggml_max_code(type)).any().item<bool>())
    return "its codes exceed the range of " + std::string(ggml_type_name(type));
  if (scales.abs().max().item<float>() > 65504.0f) return "a scale overflows fp16";
  return "";
}

std::vector<uint8_t> pack(GgmlType type, const at::Tensor& codes, const at::Tensor& scales) {
  const int64_t n = codes.size(0), k = codes.size(1), bs = ggml_block_size(type);
  const uint64_t row_bytes = ggml_row_bytes(type, k);
  std::vector<uint8_t> out(row_bytes * static_cast<uint64_t>(n));
  const at::Tensor d = scales.reshape({n, k / bs, bs}).select(2, 0).contiguous();
  const float* dp = d.data_ptr<float>();
  const int8_t* cp = codes.data_ptr<int8_t>();
  std::vector<uint16_t> d16(static_cast<size_t>(k / bs));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < k / bs; ++b) d16[b] = fp32_to_fp16(dp[r * (k / bs) + b]);
    pack_blocks(type, cp + r * k, d16.data(), k, out.data() + r * row_bytes);
  }
  return out;
}

void add_arch_metadata(GgufWriter& w, const model::ModelConfig& c) {
  const auto a = c.architecture;
  auto u32 = [&](GgufArchKey key, int64_t v) { w.set(gguf_arch_key(key, a), GgufValue::u32(static_cast<uint32_t>(v))); };
  u32(GgufArchKey::kContextLength, c.max_position_embeddings);
  u32(GgufArchKey::kEmbeddingLength, c.hidden_size);
  u32(GgufArchKey::kBlockCount, c.num_hidden_layers);
  u32(GgufArchKey::kFeedForwardLength, c.intermediate_size);
  u32(GgufArchKey::kHeadCount, c.num_attention_heads);
  u32(GgufArchKey::kHeadCountKv, c.num_key_value_heads);
  u32(GgufArchKey::kKeyLength, c.head_dim);
  u32(GgufArchKey::kValueLength, c.head_dim);
  w.set(gguf_arch_key(GgufArchKey::kRmsEps, a), GgufValue::f32(static_cast<float>(c.rms_norm_eps)));
  w.set(gguf_arch_key(GgufArchKey::kRopeFreqBase, a), GgufValue::f32(static_cast<float>(c.rope_theta)));
  u32(GgufArchKey::kRopeDimensionCount, c.head_dim);
  u32(GgufArchKey::kVocabSize, c.vocab_size);
}

}  // namespace

at::Tensor permute_qk_rows(const at::Tensor& w, int64_t n_head) {
  const int64_t rows = w.size(0);
  TORCH_CHECK(rows % (2 * n_head) == 0, "q/k rows ", rows, " are not a multiple of 2 * ", n_head, " heads");
  const at::Tensor m = w.reshape({rows, -1});
  return m.reshape({n_head, 2, rows / n_head / 2, m.size(1)}).transpose(1, 2).reshape(w.sizes()).contiguous();
}

GgufExportResult write_gguf(const QuantizedModel& model, const std::string& path, const GgufExportOptions& options) {
  const std::string& type = options.type;
  if (type != "auto" && type != "tq1_0" && type != "tq2_0" && type != "q4_0" && type != "f16" && type != "f32")
    throw ConfigError("", 0, 0, "--gguf-type", "unknown type '" + type + "' (auto, tq1_0, tq2_0, q4_0, f16, f32)");
  const bool dense = type == "f16" || type == "f32";
  const GgmlType float_type = type == "f32" ? GgmlType::kF32 : GgmlType::kF16;
  const model::ModelConfig& cfg = model.config();
  GgufExportResult result;
  GgufWriter w(32);
  w.set("general.architecture", GgufValue::string(gguf_arch_name(cfg.architecture)));
  w.set("general.type", GgufValue::string("model"));
  std::string name = options.name;
  if (name.empty()) name = fs::path(model.source.model_dir).lexically_normal().filename().string();
  if (name.empty()) name = "edgerazor";
  w.set("general.name", GgufValue::string(name));
  w.set("general.alignment", GgufValue::u32(32));

  // Tensors first (the file type depends on what they become); metadata order does not matter.
  std::vector<std::tuple<std::string, GgmlType, std::vector<int64_t>, std::vector<uint8_t>>> tensors;
  std::map<GgmlType, int64_t> weights_by_type;
  int64_t mixed_as_q4 = 0;
  for (const ExportTensor& t : model.tensors) {
    const auto gname = gguf_tensor_name(t.name);
    if (!gname) {
      result.warnings.push_back("tensor '" + t.name + "' has no GGUF name; skipped");
      continue;
    }
    const int64_t heads = qk_permutation_heads(t.name, cfg);
    const std::vector<int64_t> shape(t.value.sizes().begin(), t.value.sizes().end());
    GgmlType chosen = t.value.dim() <= 1 ? GgmlType::kF32 : float_type;
    std::vector<uint8_t> bytes;
    if (t.quantized && !dense && t.value.dim() == 2) {
      at::Tensor codes, scales;
      dense_codes(t.q, codes, scales);
      if (heads > 0) {
        codes = permute_qk_rows(codes, heads);
        scales = permute_qk_rows(scales, heads);
      }
      std::string why;
      for (GgmlType c : candidates(t.q, type)) {
        const std::string reason = misfit(c, codes, scales);
        if (reason.empty()) {
          chosen = c;
          bytes = pack(c, codes, scales);
          break;
        }
        why += (why.empty() ? "" : "; ") + std::string(ggml_type_name(c)) + ": " + reason;
      }
      if (bytes.empty() && type != "auto" && is_ternary(t.q.spec))
        throw ConfigError("", 0, 0, "--gguf-type",
                          type + " cannot store the ternary tensor '" + t.name + "' (" + why +
                              "); use --gguf-type auto (the best type each tensor fits) or another type");
      if (bytes.empty()) {
        chosen = options.fallback;
        result.warnings.push_back("tensor '" + t.name + "' fits no quantized GGUF type (" + why + "); kept as " +
                                  ggml_type_name(chosen) + " fake-quant values");
      }
    }
    if (bytes.empty()) {
      if (t.quantized && chosen == float_type && t.value.dim() == 2 && !dense) chosen = options.fallback;
      const at::Tensor v = heads > 0 ? permute_qk_rows(t.value, heads) : t.value;
      bytes = float_bytes(v, chosen);
    }
    result.sizes.tensor_bytes[t.name] = bytes.size();
    result.sizes.stored_as[t.name] = ggml_type_name(chosen);
    if (t.value.dim() == 2) weights_by_type[chosen] += t.value.numel();
    if (t.quantized && t.q.spec.rule == config::QuantRule::kMixedTernaryInt4 && chosen == GgmlType::kQ4_0) ++mixed_as_q4;
    tensors.emplace_back(*gname, chosen, shape, std::move(bytes));
  }
  if (mixed_as_q4 > 0)
    result.warnings.push_back(std::to_string(mixed_as_q4) +
                              " mixed ternary/INT4 tensors are stored as Q4_0 (4.5 bits/weight): GGUF has no per-row "
                              "type, so a 1.88/2.79-bit model is no smaller than a 4-bit one here; the packed format "
                              "(--format packed) keeps their size");
  uint32_t file_type = weights_by_type.count(GgmlType::kF16) ? kFileTypeF16 : kFileTypeF32;
  bool quantized = false;
  for (const auto& [gt, ft] : {std::pair{GgmlType::kQ8_0, kFileTypeQ8_0}, std::pair{GgmlType::kQ4_0, kFileTypeQ4_0},
                               std::pair{GgmlType::kTQ1_0, kFileTypeTQ1_0}, std::pair{GgmlType::kTQ2_0, kFileTypeTQ2_0}}) {
    if (weights_by_type.count(gt)) {
      file_type = ft;  // the last present in this order wins: TQ2_0 > TQ1_0 > Q4_0 > Q8_0
      quantized = true;
    }
  }
  w.set("general.file_type", GgufValue::u32(file_type));
  if (quantized) w.set("general.quantization_version", GgufValue::u32(2));
  add_arch_metadata(w, cfg);
  add_tokenizer_metadata(w, options.tokenizer_dir.empty() ? model.source.tokenizer_dir : options.tokenizer_dir, cfg,
                         result.warnings);
  if (model.quant_config) {
    w.set("edgerazor.quantization", GgufValue::string(config::to_yaml(*model.quant_config)));
    if (!model.quant_config->preset.empty()) w.set("edgerazor.preset", GgufValue::string(model.quant_config->preset));
  }
  for (auto& [gname, gtype, shape, bytes] : tensors) w.add_tensor(gname, gtype, shape, std::move(bytes));
  result.sizes.file_bytes = w.write(path);
  return result;  // the warnings are the caller's to show (edgerazor-export prints them once, in its report)
}

}  // namespace edgerazor::exporter
