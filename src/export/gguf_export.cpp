// GGUF export from exact codes (rules in the header).
#include "edgerazor/export/gguf_export.h"

#include <ATen/ATen.h>

#include <torch/csrc/autograd/grad_mode.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/config/quant_plan.h"
#include "edgerazor/core/error.h"
#include "edgerazor/core/log.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/io/safetensors.h"
#include "edgerazor/model/model_config.h"
#include "edgerazor/quant/module_types.h"
#include "edgerazor/runtime/caching_allocator.h"
#include "edgerazor/export/report.h"
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

void check_type_option(const std::string& type) {
  if (type != "auto" && type != "tq1_0" && type != "tq2_0" && type != "q4_0" && type != "f16" && type != "f32")
    throw ConfigError("", 0, 0, "--gguf-type", "unknown type '" + type + "' (auto, tq1_0, tq2_0, q4_0, f16, f32)");
}

// One GGUF file being written tensor by tensor: the metadata, the per-tensor type rules of the
// header comment, and the file type from what the tensors became. Both write_gguf (a model in
// memory) and stream_gguf (a checkpoint on disk) are this class fed in checkpoint order.
class ModelFileWriter {
 public:
  struct Rows {  // a tensor, or a slice of its rows
    const quant::QuantizedTensor* q = nullptr;  // quantized: the codes of these rows
    at::Tensor value;                           // unquantized: the values of these rows
  };

  ModelFileWriter(const GgufExportOptions& options, const model::ModelConfig& config, GgufExportResult& result)
      : options_(options), cfg_(config), result_(result), writer_(32) {
    check_type_option(options.type);
    dense_ = options.type == "f16" || options.type == "f32";
    float_type_ = options.type == "f32" ? GgmlType::kF32 : GgmlType::kF16;
  }

  // The metadata in its final order; general.file_type and quantization_version are provisional
  // until finish() (`expect_quantized`: whether any tensor is expected to be stored quantized).
  void begin(const std::string& model_dir, const std::string& tokenizer_dir,
             const std::optional<config::QuantConfig>& quant_config, bool expect_quantized,
             const std::vector<model::ParameterShape>& tensors) {
    GgufWriter& w = writer_;
    w.set("general.architecture", GgufValue::string(gguf_arch_name(cfg_.architecture)));
    w.set("general.type", GgufValue::string("model"));
    std::string name = options_.name;
    if (name.empty()) name = fs::path(model_dir).lexically_normal().filename().string();
    if (name.empty()) name = "edgerazor";
    w.set("general.name", GgufValue::string(name));
    w.set("general.alignment", GgufValue::u32(32));
    w.set("general.file_type", GgufValue::u32(kFileTypeF32));
    if (expect_quantized && !dense_) w.set("general.quantization_version", GgufValue::u32(2));
    add_arch_metadata(w, cfg_);
    add_tokenizer_metadata(w, options_.tokenizer_dir.empty() ? tokenizer_dir : options_.tokenizer_dir, cfg_, result_.warnings);
    if (quant_config) {
      w.set("edgerazor.quantization", GgufValue::string(config::to_yaml(*quant_config)));
      if (!quant_config->preset.empty()) w.set("edgerazor.preset", GgufValue::string(quant_config->preset));
    }
    for (const auto& t : tensors)
      if (const auto gname = gguf_tensor_name(t.name)) w.declare_tensor(*gname, GgmlType::kF32, t.shape);
  }

  void open(const std::string& path) { writer_.open_stream(path); }

  // Whether the tensor is written at all (a name GGUF has no place for is skipped, with a warning).
  bool start_tensor(const std::string& hf_name, const std::vector<int64_t>& shape, const quant::QuantSpec* spec) {
    if (!gguf_tensor_name(hf_name)) {
      result_.warnings.push_back("tensor '" + hf_name + "' has no GGUF name; skipped");
      return false;
    }
    name_ = hf_name;
    shape_ = shape;
    spec_ = spec;
    heads_ = qk_permutation_heads(hf_name, cfg_);
    locked_.reset();
    tensor_bytes_ = 0;
    return true;
  }

  // Whether this tensor may be written a slice of rows at a time: the bytes are then those of the
  // whole tensor (no q/k permutation across rows, every scale group inside one row).
  bool can_slice_rows() const {
    if (shape_.size() != 2 || heads_ > 0) return false;
    return !spec_ || quant::groups_follow_rows(*spec_, shape_[1]);
  }

  // Encodes and writes rows. A later slice that does not take the type the first one took
  // returns false and writes nothing: the caller starts the tensor again whole (restart()).
  bool write_rows(const Rows& rows) {
    std::vector<uint8_t> bytes;
    const GgmlType chosen = encode(rows, bytes);
    if (locked_ && *locked_ != chosen) return false;
    locked_ = chosen;
    writer_.stream_data(bytes.data(), bytes.size());
    tensor_bytes_ += bytes.size();
    return true;
  }
  bool sliced_fallback() const { return locked_ && !warning_.empty(); }  // a fallback is decided on the whole tensor

  void restart() {
    locked_.reset();
    warning_.clear();
    tensor_bytes_ = 0;
    writer_.rewind_tensor();
  }

  void end_tensor() {
    const GgmlType chosen = *locked_;
    if (!warning_.empty()) result_.warnings.push_back(warning_);
    warning_.clear();
    writer_.set_tensor_type(index_++, chosen);
    writer_.end_tensor();
    result_.sizes.tensor_bytes[name_] = tensor_bytes_;
    result_.sizes.stored_as[name_] = ggml_type_name(chosen);
    int64_t numel = 1;
    for (int64_t d : shape_) numel *= d;
    if (shape_.size() == 2) weights_by_type_[chosen] += numel;
    if (spec_ && spec_->rule == config::QuantRule::kMixedTernaryInt4 && chosen == GgmlType::kQ4_0) ++mixed_as_q4_;
  }

  void finish() {
    if (mixed_as_q4_ > 0)
      result_.warnings.push_back(std::to_string(mixed_as_q4_) +
                                 " mixed ternary/INT4 tensors are stored as Q4_0 (4.5 bits/weight): GGUF has no per-row "
                                 "type, so a 1.88/2.79-bit model is no smaller than a 4-bit one here; the packed format "
                                 "(--format packed) keeps their size");
    uint32_t file_type = weights_by_type_.count(GgmlType::kF16) ? kFileTypeF16 : kFileTypeF32;
    bool quantized = false;
    for (const auto& [gt, ft] : {std::pair{GgmlType::kQ8_0, kFileTypeQ8_0}, std::pair{GgmlType::kQ4_0, kFileTypeQ4_0},
                                 std::pair{GgmlType::kTQ1_0, kFileTypeTQ1_0}, std::pair{GgmlType::kTQ2_0, kFileTypeTQ2_0}}) {
      if (weights_by_type_.count(gt)) {
        file_type = ft;  // the last present in this order wins: TQ2_0 > TQ1_0 > Q4_0 > Q8_0
        quantized = true;
      }
    }
    writer_.replace("general.file_type", GgufValue::u32(file_type));
    writer_.erase("general.quantization_version");
    if (quantized) writer_.insert_after("general.file_type", "general.quantization_version", GgufValue::u32(2));
    result_.sizes.file_bytes = writer_.commit();
  }

 private:
  GgmlType encode(const Rows& rows, std::vector<uint8_t>& bytes) {
    const std::string& type = options_.type;
    const bool quantized = rows.q != nullptr;
    const int64_t dim = static_cast<int64_t>(shape_.size());
    GgmlType chosen = dim <= 1 ? GgmlType::kF32 : float_type_;
    if (quantized && !dense_ && dim == 2) {
      at::Tensor codes, scales;
      dense_codes(*rows.q, codes, scales);
      if (heads_ > 0) {
        codes = permute_qk_rows(codes, heads_);
        scales = permute_qk_rows(scales, heads_);
      }
      std::string why;
      for (GgmlType c : candidates(*rows.q, type)) {
        const std::string reason = misfit(c, codes, scales);
        if (reason.empty()) {
          bytes = pack(c, codes, scales);
          return c;
        }
        why += (why.empty() ? "" : "; ") + std::string(ggml_type_name(c)) + ": " + reason;
      }
      if (type != "auto" && is_ternary(rows.q->spec))
        throw ConfigError("", 0, 0, "--gguf-type",
                          type + " cannot store the ternary tensor '" + name_ + "' (" + why +
                              "); use --gguf-type auto (the best type each tensor fits) or another type");
      chosen = options_.fallback;
      warning_ = "tensor '" + name_ + "' fits no quantized GGUF type (" + why + "); kept as " + ggml_type_name(chosen) +
                 " fake-quant values";
    }
    const at::Tensor value = quantized ? rows.q->dequantize().reshape(rows.q->shape) : rows.value;
    bytes = float_bytes(heads_ > 0 ? permute_qk_rows(value, heads_) : value, chosen);
    return chosen;
  }

  const GgufExportOptions& options_;
  const model::ModelConfig& cfg_;
  GgufExportResult& result_;
  GgufWriter writer_;
  bool dense_ = false;
  GgmlType float_type_ = GgmlType::kF16;
  // the tensor being written
  std::string name_, warning_;
  std::vector<int64_t> shape_;
  const quant::QuantSpec* spec_ = nullptr;
  int64_t heads_ = 0;
  std::optional<GgmlType> locked_;
  uint64_t tensor_bytes_ = 0;
  size_t index_ = 0;
  std::map<GgmlType, int64_t> weights_by_type_;
  int64_t mixed_as_q4_ = 0;
};

}  // namespace

at::Tensor permute_qk_rows(const at::Tensor& w, int64_t n_head) {
  const int64_t rows = w.size(0);
  TORCH_CHECK(rows % (2 * n_head) == 0, "q/k rows ", rows, " are not a multiple of 2 * ", n_head, " heads");
  const at::Tensor m = w.reshape({rows, -1});
  return m.reshape({n_head, 2, rows / n_head / 2, m.size(1)}).transpose(1, 2).reshape(w.sizes()).contiguous();
}

GgufExportResult write_gguf(const QuantizedModel& model, const std::string& path, const GgufExportOptions& options) {
  GgufExportResult result;
  ModelFileWriter file(options, model.config(), result);
  std::vector<model::ParameterShape> shapes;
  bool any_quantized = false;
  for (const ExportTensor& t : model.tensors) {
    shapes.push_back({t.name, std::vector<int64_t>(t.value.sizes().begin(), t.value.sizes().end())});
    any_quantized = any_quantized || t.quantized;
  }
  file.begin(model.source.model_dir, model.source.tokenizer_dir, model.quant_config, any_quantized, shapes);
  file.open(path);
  for (size_t i = 0; i < model.tensors.size(); ++i) {
    const ExportTensor& t = model.tensors[i];
    if (!file.start_tensor(t.name, shapes[i].shape, t.quantized ? &t.q.spec : nullptr)) continue;
    ModelFileWriter::Rows rows;
    if (t.quantized) rows.q = &t.q;
    else rows.value = t.value;
    file.write_rows(rows);
    file.end_tensor();
  }
  file.finish();
  return result;  // the warnings are the caller's to show (edgerazor-export prints them once, in its report)
}

StreamedGguf stream_gguf(const ExportSourceOptions& source, const std::string& path, const GgufExportOptions& options) {
  check_type_option(options.type);
  StreamedGguf out;
  out.source = resolve_source(source);
  const ResolvedQuantization rq = resolve_quantization(source, out.source);
  out.quant_config = rq.config;
  out.description = rq.description;
  const model::ModelConfig cfg = model::load_model_config(out.source.model_dir);
  // What inject() would attach, decided on shapes alone.
  int64_t total_params = 0;
  const auto modules = describe_model_shapes(cfg, &total_params);
  std::map<std::string, quant::QuantSpec> specs;  // weight tensor name -> its quantizer
  std::optional<quant::QuantSpec> tied_fake_quant;
  if (rq.config) {
    const config::QuantPlan plan = config::plan_quantization(modules, *rq.config, quant::module_type_keys());
    out.coverage = config::make_report(plan, total_params);
    for (const auto& w : plan.weights) {
      if (w.tied_duplicate) continue;
      if (w.settings.is_w_quantized)
        log_warning(w.name + ".weight: is_w_quantized is set; the stored weights are quantized again from their values");
      specs.emplace(w.name + ".weight", quant::weight_spec(w.settings));
    }
    // Tied weights quantized through lm_head only (target_types [linear]): the model computes the
    // embedding with lm_head's fake-quant values, and the in-memory export writes those as floats.
    if (cfg.tie_word_embeddings && specs.count("lm_head.weight") && !specs.count("model.embed_tokens.weight"))
      tied_fake_quant = specs.at("lm_head.weight");
  } else {
    out.coverage = config::make_report(config::QuantPlan{}, total_params);
  }
  const std::vector<model::ParameterShape> expected = model::checkpoint_shapes(cfg);
  const io::SafetensorsCheckpoint ckpt = io::SafetensorsCheckpoint::open(out.source.model_dir);
  std::set<std::string> names;
  for (const auto& e : expected) names.insert(e.name);
  io::refuse_unexpected_tensors(ckpt, names, cfg);  // before anything is written

  torch::NoGradGuard no_grad;
  ModelFileWriter file(options, cfg, out.written);
  file.begin(out.source.model_dir, out.source.tokenizer_dir, rq.config, !specs.empty(), expected);
  file.open(path);
  for (const auto& e : expected) {
    const at::Tensor source_view = io::checked_tensor_view(ckpt, e.name, e.shape, cfg, out.source.model_dir, true);
    const auto located = ckpt.find(e.name);
    const auto spec_it = specs.find(e.name);
    const quant::QuantSpec* spec = spec_it == specs.end() ? nullptr : &spec_it->second;
    out.tensors.push_back({e.name, spec != nullptr, source_view.numel()});
    if (!file.start_tensor(e.name, e.shape, spec)) continue;
    // Rows the way the model would hold them (in the load dtype), quantized like its quantizer.
    const bool tied_values = tied_fake_quant && e.name == "model.embed_tokens.weight";
    auto write = [&](int64_t begin, int64_t count) {
      at::Tensor part = (count == e.shape[0] ? source_view : source_view.narrow(0, begin, count)).to(source.dtype);
      if (tied_values) part = quant::fake_quantize(part, *tied_fake_quant);
      ModelFileWriter::Rows rows;
      quant::QuantizedTensor q;
      if (spec) {
        q = quant::quantize(part, *spec);  // checkpoint matrices are 2-D: no conv reshape as in the quantizer
        rows.q = &q;
      } else {
        rows.value = part;
      }
      const bool written = file.write_rows(rows);
      const uint64_t row_bytes = source_view.numel() / e.shape[0] * source_view.element_size();
      located->file->release(*located->entry, begin * row_bytes, count * row_bytes);  // done with these rows
      return written;
    };
    const int64_t row_elements = e.shape.size() == 2 ? e.shape[1] : source_view.numel();
    const int64_t slice = std::max<int64_t>(1, options.max_slice_elements / std::max<int64_t>(1, row_elements));
    bool whole = !file.can_slice_rows() || slice >= e.shape[0] || tied_values;
    if (!whole) {
      for (int64_t begin = 0; begin < e.shape[0]; begin += slice) {
        if (!write(begin, std::min(slice, e.shape[0] - begin)) || file.sliced_fallback()) {
          whole = true;  // a slice disagrees with the first, or no block type fits: decide on the whole tensor
          file.restart();
          break;
        }
      }
    }
    if (whole) write(0, e.shape[0]);
    file.end_tensor();
    located->file->release(*located->entry);  // its pages leave the resident set
    // Tensors of ever other sizes leave holes the heap does not reuse (glibc is told not to trim,
    // runtime::configure_allocator), ~20 MB a layer: give them back once they add up (trimming
    // after every tensor costs the refaults, 1.7x the time).
    runtime::release_free_heap_when_grown(size_t{64} << 20);
  }
  file.finish();
  return out;
}

}  // namespace edgerazor::exporter
