// Packed EdgeRazor checkpoint writer and reader (layout in the header).
#include "edgerazor/export/packed.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "edgerazor/config/quant_config.h"
#include "edgerazor/config/quant_functions.h"
#include "edgerazor/core/error.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/io/safetensors.h"
#include "edgerazor/io/tensor_io.h"
#include "edgerazor/quant/inject.h"

namespace edgerazor::exporter {
namespace fs = std::filesystem;
using config::QuantRule;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "edgerazor-packed";
constexpr const char* kVersion = "1";

enum class CodeKind { kTernary, kInt4, kInt8, kMixed };

CodeKind code_kind(const quant::QuantSpec& spec) {
  switch (spec.rule) {
    case QuantRule::kTernaryAbsmean:
    case QuantRule::kTernaryAbsmax: return CodeKind::kTernary;
    case QuantRule::kAsymmetricMax: return CodeKind::kInt4;
    case QuantRule::kSymmetricAbsmax: return spec.qmax <= 7 ? CodeKind::kInt4 : CodeKind::kInt8;
    case QuantRule::kMixedTernaryInt4: return CodeKind::kMixed;
    case QuantRule::kMixedInt4Int8: return CodeKind::kInt8;
  }
  return CodeKind::kInt8;
}

const char* granularity_name(config::Granularity g) {
  switch (g) {
    case config::Granularity::kTensor: return "tensor";
    case config::Granularity::kChannel: return "channel";
    case config::Granularity::kBlock: return "block";
    case config::Granularity::kToken: return "token";
  }
  return "?";
}

at::Tensor bytes_tensor(std::vector<uint8_t> bytes) {
  at::Tensor t = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  if (!bytes.empty()) std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

std::vector<int64_t> sizes_of(const at::Tensor& t) { return std::vector<int64_t>(t.sizes().begin(), t.sizes().end()); }

void check_code_range(const int8_t* c, int64_t n, int lo, int hi, const std::string& name) {
  for (int64_t i = 0; i < n; ++i)
    if (c[i] < lo || c[i] > hi)
      throw std::logic_error("packed export: '" + name + "' code " + std::to_string(c[i]) + " outside [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

}  // namespace

// ---- packing primitives ------------------------------------------------------------------------
std::vector<uint8_t> pack_ternary_base3(const int8_t* c, int64_t n) {
  std::vector<uint8_t> out(static_cast<size_t>((n + 4) / 5), 0);
  for (int64_t j = 0; j < static_cast<int64_t>(out.size()); ++j) {
    int v = 0, p = 1;
    for (int i = 0; i < 5 && 5 * j + i < n; ++i, p *= 3) v += (c[5 * j + i] + 1) * p;
    out[j] = static_cast<uint8_t>(v);
  }
  return out;
}

std::vector<uint8_t> pack_ternary_2bit(const int8_t* c, int64_t n) {
  std::vector<uint8_t> out(static_cast<size_t>((n + 3) / 4), 0);
  for (int64_t e = 0; e < n; ++e) out[e / 4] |= static_cast<uint8_t>((c[e] + 2) << (2 * (e % 4)));
  return out;
}

std::vector<uint8_t> pack_int4(const int8_t* c, int64_t n) {
  std::vector<uint8_t> out(static_cast<size_t>((n + 1) / 2), 0);
  for (int64_t e = 0; e < n; ++e) out[e / 2] |= static_cast<uint8_t>((c[e] + 8) << (e % 2 == 0 ? 4 : 0));
  return out;
}

void unpack_ternary_base3(const uint8_t* b, int64_t n, int8_t* c) {
  for (int64_t e = 0; e < n; ++e) {
    int v = b[e / 5];
    for (int i = 0; i < e % 5; ++i) v /= 3;
    c[e] = static_cast<int8_t>(v % 3 - 1);
  }
}

void unpack_ternary_2bit(const uint8_t* b, int64_t n, int8_t* c) {
  for (int64_t e = 0; e < n; ++e) c[e] = static_cast<int8_t>(((b[e / 4] >> (2 * (e % 4))) & 3) - 2);
}

void unpack_int4(const uint8_t* b, int64_t n, int8_t* c) {
  for (int64_t e = 0; e < n; ++e) c[e] = static_cast<int8_t>(((b[e / 2] >> (e % 2 == 0 ? 4 : 0)) & 0xf) - 8);
}

// ---- writer ------------------------------------------------------------------------------------
WrittenSizes write_packed(const QuantizedModel& model, const std::string& path, const PackedOptions& options) {
  io::NamedTensors out;
  WrittenSizes sizes;
  json described = json::object();
  const bool base3 = options.ternary == TernaryPacking::kBase3;
  for (const ExportTensor& t : model.tensors) {
    if (!t.quantized) {
      out.emplace_back(t.name, t.value.contiguous());
      sizes.tensor_bytes[t.name] = t.value.numel() * t.value.element_size();
      sizes.stored_as[t.name] = io::dtype_name(t.value.scalar_type() == at::kBFloat16 ? io::DType::kBF16
                                               : t.value.scalar_type() == at::kHalf  ? io::DType::kF16
                                                                                     : io::DType::kF32);
      continue;
    }
    const quant::QuantizedTensor& q = t.q;
    const int64_t group = q.codes.size(-1);
    const at::Tensor codes = q.codes.reshape({-1, group}).contiguous();  // (NG, B)
    const int64_t ng = codes.size(0);
    const CodeKind kind = code_kind(q.spec);
    at::Tensor int4_rows = kind == CodeKind::kInt4    ? at::ones({ng}, at::kBool)
                           : kind == CodeKind::kMixed ? q.int4_groups.to(at::kBool).reshape({-1})
                                                      : at::zeros({ng}, at::kBool);
    if (int4_rows.size(0) != ng) throw std::logic_error("packed export: '" + t.name + "' mask does not match its groups");
    uint64_t bytes = 0;
    if (kind == CodeKind::kInt8) {
      out.emplace_back(t.name + ".codes_int8", codes.reshape({-1}));
      bytes += codes.numel();
    } else {
      const at::Tensor tern = codes.index({int4_rows.logical_not()}).reshape({-1}).contiguous();
      const at::Tensor i4 = codes.index({int4_rows}).reshape({-1}).contiguous();
      if (tern.numel() > 0) {
        check_code_range(tern.data_ptr<int8_t>(), tern.numel(), -1, 1, t.name);
        auto packed = base3 ? pack_ternary_base3(tern.data_ptr<int8_t>(), tern.numel())
                            : pack_ternary_2bit(tern.data_ptr<int8_t>(), tern.numel());
        bytes += packed.size();
        out.emplace_back(t.name + ".codes", bytes_tensor(std::move(packed)));
      }
      if (i4.numel() > 0) {
        check_code_range(i4.data_ptr<int8_t>(), i4.numel(), -8, 7, t.name);
        auto packed = pack_int4(i4.data_ptr<int8_t>(), i4.numel());
        bytes += packed.size();
        out.emplace_back(t.name + ".codes_int4", bytes_tensor(std::move(packed)));
      }
      if (kind == CodeKind::kMixed) {
        std::vector<uint8_t> mask(static_cast<size_t>((ng + 7) / 8), 0);
        const at::Tensor m = int4_rows.to(at::kByte).contiguous();
        for (int64_t g = 0; g < ng; ++g)
          if (m.data_ptr<uint8_t>()[g]) mask[g / 8] |= static_cast<uint8_t>(1u << (g % 8));
        bytes += mask.size();
        out.emplace_back(t.name + ".int4_mask", bytes_tensor(std::move(mask)));
      }
    }
    std::vector<int64_t> groups_shape = sizes_of(q.codes);
    std::vector<int64_t> scale_shape(groups_shape.begin(), groups_shape.end() - 1);
    const at::Tensor scales = q.scales.reshape(scale_shape).contiguous();
    out.emplace_back(t.name + ".scales", scales);
    bytes += scales.numel() * scales.element_size();
    sizes.tensor_bytes[t.name] = bytes;
    sizes.stored_as[t.name] = kind == CodeKind::kInt8 ? "int8"
                              : kind == CodeKind::kInt4 ? "int4_nibbles"
                              : kind == CodeKind::kMixed ? (base3 ? "mixed_base3_nibbles" : "mixed_2bit_nibbles")
                                                         : (base3 ? "ternary_base3" : "ternary_2bit");
    described[t.name] = {
        {"function", q.spec.function},
        {"granularity", granularity_name(q.spec.granularity)},
        {"block_size", q.spec.block_size},
        {"qmax", q.spec.qmax},
        {"scale_factor", q.spec.scale_factor},
        {"eps", q.spec.eps},
        {"strategy", q.spec.strategy},
        {"mixed_prop", q.spec.mixed_prop},
        {"shape", q.shape},
        {"groups", groups_shape},
        {"numel", q.numel},
        {"ternary_packing", base3 ? "base3" : "2bit"},
        {"scale_dtype", io::dtype_name(scales.scalar_type() == at::kBFloat16 ? io::DType::kBF16
                                       : scales.scalar_type() == at::kHalf   ? io::DType::kF16
                                                                              : io::DType::kF32)},
    };
  }
  std::map<std::string, std::string> meta = {
      {"format", kFormat},
      {"version", kVersion},
      {"model_config", model::model_config_to_json(model.config())},
      {"tensors", described.dump()},
  };
  if (model.quant_config) {
    meta["quantization"] = config::to_yaml(*model.quant_config);
    meta["preset"] = model.quant_config->preset;
  }
  io::save_safetensors(path, out, meta);
  sizes.file_bytes = fs::file_size(path);
  return sizes;
}

// ---- reader ------------------------------------------------------------------------------------
const ExportTensor* PackedCheckpoint::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

PackedCheckpoint read_packed(const std::string& path) {
  const auto file = io::SafetensorsFile::open(path);
  const auto& meta = file->metadata();
  auto get = [&](const std::string& key) -> std::string {
    const auto it = meta.find(key);
    if (it == meta.end()) throw FormatError(path, "metadata key '" + key + "' is missing: not an EdgeRazor packed checkpoint");
    return it->second;
  };
  if (get("format") != kFormat) throw FormatError(path, "metadata format is '" + get("format") + "', expected '" + kFormat + "'");
  if (get("version") != kVersion) throw FormatError(path, "unsupported packed version '" + get("version") + "' (expected 1)");
  PackedCheckpoint ck;
  ck.config = model::parse_model_config(get("model_config"), path + " (model_config)");
  if (meta.count("quantization")) ck.quantization_yaml = meta.at("quantization");
  if (meta.count("preset")) ck.preset = meta.at("preset");
  json described;
  try {
    described = json::parse(get("tensors"));
  } catch (const json::exception& e) {
    throw FormatError(path, std::string("metadata 'tensors' is not valid JSON: ") + e.what());
  }
  std::set<std::string> consumed;
  auto tensor = [&](const std::string& name, bool required) -> at::Tensor {
    const io::TensorEntry* e = file->find(name);
    if (!e) {
      if (required) throw FormatError(path, "tensor '" + name + "' is missing");
      return {};
    }
    consumed.insert(name);
    return io::tensor_view(*file, *e).clone();
  };
  for (const auto& [name, d] : described.items()) {
    ExportTensor t;
    t.name = name;
    t.quantized = true;
    try {
      quant::QuantSpec spec = quant::spec_for(d.at("function").get<std::string>(), d.at("block_size").get<int64_t>(),
                                              d.at("scale_factor").get<double>(), d.at("mixed_prop").get<double>(),
                                              d.at("eps").get<double>());
      t.q.spec = spec;
      t.q.shape = d.at("shape").get<std::vector<int64_t>>();
      t.q.numel = d.at("numel").get<int64_t>();
      const auto groups = d.at("groups").get<std::vector<int64_t>>();
      const bool base3 = d.at("ternary_packing").get<std::string>() == "base3";
      int64_t total = 1;
      for (int64_t g : groups) total *= g;
      if (groups.empty() || total <= 0) throw FormatError(path, "tensor '" + name + "': bad groups shape");
      const int64_t group = groups.back(), ng = total / group;
      const CodeKind kind = code_kind(spec);
      at::Tensor codes = at::zeros({ng, group}, at::kChar);
      at::Tensor mask = at::zeros({ng}, at::kBool);
      if (kind == CodeKind::kInt4) mask.fill_(true);
      if (kind == CodeKind::kMixed) {
        const at::Tensor bits = tensor(name + ".int4_mask", true);
        if (bits.numel() != (ng + 7) / 8)
          throw FormatError(path, "tensor '" + name + ".int4_mask' has " + std::to_string(bits.numel()) + " bytes, expected " +
                                      std::to_string((ng + 7) / 8));
        for (int64_t g = 0; g < ng; ++g) mask[g] = ((bits.data_ptr<uint8_t>()[g / 8] >> (g % 8)) & 1) != 0;
        t.q.int4_groups = mask;
      }
      if (kind == CodeKind::kInt8) {
        const at::Tensor raw = tensor(name + ".codes_int8", true);
        if (raw.numel() != total) throw FormatError(path, "tensor '" + name + ".codes_int8' has the wrong size");
        codes = raw.to(at::kChar).reshape({ng, group});
      } else {
        const int64_t n4 = mask.sum().item<int64_t>() * group, n3 = total - n4;
        if (n3 > 0) {
          const at::Tensor b = tensor(name + ".codes", true);
          const int64_t want = base3 ? (n3 + 4) / 5 : (n3 + 3) / 4;
          if (b.numel() != want)
            throw FormatError(path, "tensor '" + name + ".codes' has " + std::to_string(b.numel()) + " bytes, expected " + std::to_string(want));
          at::Tensor c = at::empty({n3}, at::kChar);
          if (base3) unpack_ternary_base3(b.data_ptr<uint8_t>(), n3, c.data_ptr<int8_t>());
          else unpack_ternary_2bit(b.data_ptr<uint8_t>(), n3, c.data_ptr<int8_t>());
          if (c.lt(-1).any().item<bool>() || c.gt(1).any().item<bool>())
            throw FormatError(path, "tensor '" + name + ".codes' holds values that are not ternary");
          codes.index_put_({mask.logical_not()}, c.reshape({-1, group}));
        }
        if (n4 > 0) {
          const at::Tensor b = tensor(name + ".codes_int4", true);
          if (b.numel() != (n4 + 1) / 2)
            throw FormatError(path, "tensor '" + name + ".codes_int4' has " + std::to_string(b.numel()) + " bytes, expected " + std::to_string((n4 + 1) / 2));
          at::Tensor c = at::empty({n4}, at::kChar);
          unpack_int4(b.data_ptr<uint8_t>(), n4, c.data_ptr<int8_t>());
          codes.index_put_({mask}, c.reshape({-1, group}));
        }
      }
      std::vector<int64_t> scale_shape(groups.begin(), groups.end() - 1);
      at::Tensor scales = tensor(name + ".scales", true);
      if (scales.numel() != ng) throw FormatError(path, "tensor '" + name + ".scales' has " + std::to_string(scales.numel()) +
                                                            " values, expected " + std::to_string(ng));
      scale_shape.push_back(1);
      t.q.codes = codes.reshape(groups);
      t.q.scales = scales.reshape(scale_shape);
      t.value = t.q.dequantize();
    } catch (const json::exception& e) {
      throw FormatError(path, "metadata for tensor '" + name + "': " + e.what());
    }
    ck.tensors.push_back(std::move(t));
  }
  for (const auto& e : file->tensors()) {
    if (consumed.count(e.name)) continue;
    ExportTensor t;
    t.name = e.name;
    t.value = io::tensor_view(*file, e).clone();
    ck.tensors.push_back(std::move(t));
  }
  return ck;
}

model::CausalLM load_packed_model(const std::string& path) {
  const PackedCheckpoint ck = read_packed(path);
  model::CausalLM m(ck.config);
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : io::checkpoint_tensors(*m)) {
    const ExportTensor* t = ck.find(name);
    if (!t) throw FormatError(path, "tensor '" + name + "' is missing from the packed checkpoint");
    if (!t->value.sizes().equals(param.sizes())) throw FormatError(path, "tensor '" + name + "' has the wrong shape");
    param.set_data(t->value.to(param.scalar_type()).clone());
  }
  m->tie_weights();
  m->eval();
  return m;
}

model::CausalLM load_packed_for_inference(const std::string& path) {
  model::CausalLM m = load_packed_model(path);
  const PackedCheckpoint ck = read_packed(path);
  if (!ck.quantization_yaml.empty()) quant::inject(*m, config::parse_quant_config_yaml(ck.quantization_yaml, path + " (quantization)"));
  m->eval();
  return m;
}

bool is_packed_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec) || std::filesystem::path(path).extension() != ".safetensors") return false;
  try {
    const auto file = io::SafetensorsFile::open(path);  // maps the file: reads only the header
    const auto it = file->metadata().find("format");
    return it != file->metadata().end() && it->second == "edgerazor-packed";
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace edgerazor::exporter
