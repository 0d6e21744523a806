// Quantizer maths (spec quantization.md §1, §2, §4.1). Every op runs in the input's dtype and in
// the reference's order, so bf16 results match the reference bit for bit (§0.2).
#include "edgerazor/quant/functions.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "../runtime/openmp_required.h"

#include <map>
#include <mutex>

#include "edgerazor/core/error.h"
#include "edgerazor/quant/fake_quant_kernel.h"

namespace edgerazor::quant {

using config::Granularity;
using config::QuantRule;

QuantSpec spec_for(const std::string& function, int64_t block_size, double scale_factor, double mixed_prop,
                   double eps) {
  const config::FunctionInfo* info = config::find_function(function);
  if (!info) throw ConfigError("unknown quantizer function '" + function + "'");
  QuantSpec spec;
  spec.rule = info->rule;
  spec.granularity = info->granularity;
  spec.qmax = info->qmax();
  spec.block_size = block_size > 0 ? block_size : info->default_block_size;
  spec.scale_factor = scale_factor > 0 ? scale_factor : info->default_scale_factor;
  spec.eps = eps;
  spec.strategy = info->strategy;
  spec.mixed_prop = mixed_prop > 0 ? mixed_prop : info->default_mixed_prop;
  spec.function = function;
  return spec;
}

QuantSpec weight_spec(const config::QuantFunctionSettings& s) {
  return spec_for(s.weight_function, s.w_block_size, s.w_scale_factor, s.w_mixed_precision_prop, s.epsilon);
}

QuantSpec activation_spec(const config::QuantFunctionSettings& s) {
  return spec_for(s.activation_function, s.a_block_size, -1, s.a_mixed_precision_prop, s.epsilon);
}

QuantSpec kv_spec(const config::QuantFunctionSettings& s) {
  return spec_for(s.kv_cache_function, s.kv_block_size, -1, s.kv_mixed_precision_prop, s.epsilon);
}

// ---- blocks -------------------------------------------------------------------------------------

at::Tensor to_blocks(const at::Tensor& input, int64_t block_size, bool allow_padding) {
  TORCH_CHECK(block_size > 0, "block size must be positive, got ", block_size);
  const int64_t numel = input.numel();
  if (input.dim() >= 1 && input.size(-1) % block_size == 0) {  // case 1: blocks stay inside rows
    std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end() - 1);
    shape.push_back(input.size(-1) / block_size);
    shape.push_back(block_size);
    return input.reshape(shape);
  }
  if (numel % block_size == 0) return input.reshape({numel / block_size, block_size});  // case 2
  TORCH_CHECK(allow_padding, "tensor of ", numel, " elements is not a whole number of blocks of ", block_size);
  const int64_t pad = block_size - numel % block_size;  // case 3: zero padding joins the statistics
  return at::cat({input.reshape({-1}), at::zeros({pad}, input.options())}).reshape({-1, block_size});
}

at::Tensor from_blocks(const at::Tensor& blocks, at::IntArrayRef shape) {
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  if (blocks.numel() == numel) return blocks.reshape(shape);
  return blocks.reshape({-1}).slice(0, 0, numel).reshape(shape);
}

at::Tensor absmean_scale(const at::Tensor& groups, double scale_factor, double eps) {
  return groups.abs().mean(-1, /*keepdim=*/true).mul(scale_factor).clamp_min(eps);
}

at::Tensor absmax_scale(const at::Tensor& groups, int qmax, double eps) {
  // clamp before dividing (§1.4): the smallest scale is eps / Q.
  at::Tensor s = groups.abs().amax(-1, /*keepdim=*/true).clamp_min(eps);
  return qmax == 1 ? s : s.div(qmax);
}

// ---- SQMP strategies ------------------------------------------------------------------------------

namespace {

at::Tensor bool_mask(int64_t n, const at::Tensor& like) {
  return at::zeros({n}, like.options().dtype(at::kBool));
}

// Python int(): truncation toward zero.
int64_t py_int(double v) { return static_cast<int64_t>(v); }

void require_rows(const MaskContext& c, const char* strategy) {
  if (c.rows <= 0 || c.blocks_per_row <= 0)
    throw ConfigError(std::string("mixed strategy '") + strategy +
                      "' needs blocks that follow whole rows (row length divisible by the block size)");
}

std::map<std::string, MaskRule> builtin_rules() {
  std::map<std::string, MaskRule> rules;
  rules["dynamic"] = [](const MaskContext& c) {  // the k highest-variance blocks of the whole tensor
    at::Tensor mask = bool_mask(c.num_blocks, c.blocks);
    const int64_t k = py_int(static_cast<double>(c.num_blocks) * c.prop);
    if (k > 0) mask.index_fill_(0, std::get<1>(c.blocks.var(-1, /*unbiased=*/true).topk(k)), true);
    return mask;
  };
  rules["static"] = [](const MaskContext& c) {  // the first k blocks in row-major order
    at::Tensor mask = bool_mask(c.num_blocks, c.blocks);
    const int64_t k = py_int(static_cast<double>(c.num_blocks) * c.prop);
    if (k > 0) mask.slice(0, 0, k).fill_(true);
    return mask;
  };
  rules["static_column_wise"] = [](const MaskContext& c) {  // block columns j < int(C*p), all rows
    require_rows(c, "static_column_wise");
    const int64_t cols = py_int(static_cast<double>(c.blocks_per_row) * c.prop);
    at::Tensor j = at::arange(c.blocks_per_row, c.blocks.options().dtype(at::kLong));
    return j.lt(cols).unsqueeze(0).expand({c.rows, c.blocks_per_row}).reshape({-1}).clone();
  };
  rules["static_row_wise_sparse"] = [](const MaskContext& c) {  // row n iff n % int(1/p) == 0
    require_rows(c, "static_row_wise_sparse");
    at::Tensor n = at::arange(c.rows, c.blocks.options().dtype(at::kLong));
    if (c.prop <= 0) return bool_mask(c.num_blocks, c.blocks);
    const int64_t r = std::max<int64_t>(1, py_int(1.0 / c.prop));
    return n.remainder(r).eq(0).unsqueeze(1).expand({c.rows, c.blocks_per_row}).reshape({-1}).clone();
  };
  rules["static_sparse"] = [](const MaskContext& c) {  // block b iff b % 100 < int(100 p)
    at::Tensor b = at::arange(c.num_blocks, c.blocks.options().dtype(at::kLong));
    return b.remainder(100).lt(py_int(100.0 * c.prop));
  };
  return rules;
}

std::mutex& rules_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, MaskRule>& rules() {
  static std::map<std::string, MaskRule> table = builtin_rules();
  return table;
}

}  // namespace

void register_mixed_strategy(const std::string& name, MaskRule rule) {
  {
    std::lock_guard<std::mutex> lock(rules_mutex());
    rules()[name] = std::move(rule);
  }
  config::register_mixed_strategy_name(name);
}

at::Tensor mixed_block_mask(const std::string& strategy, const MaskContext& context) {
  MaskRule rule;
  {
    std::lock_guard<std::mutex> lock(rules_mutex());
    const auto it = rules().find(strategy);
    if (it == rules().end()) throw ConfigError("unknown mixed-precision strategy '" + strategy + "'");
    rule = it->second;
  }
  at::Tensor mask = rule(context);
  TORCH_CHECK(mask.dim() == 1 && mask.size(0) == context.num_blocks && mask.scalar_type() == at::kBool,
              "mixed strategy '", strategy, "' must return a bool mask of ", context.num_blocks, " blocks");
  return mask;
}

bool operator==(const QuantSpec& a, const QuantSpec& b) {
  return a.rule == b.rule && a.granularity == b.granularity && a.qmax == b.qmax && a.block_size == b.block_size &&
         a.scale_factor == b.scale_factor && a.eps == b.eps && a.strategy == b.strategy &&
         a.mixed_prop == b.mixed_prop && a.function == b.function;
}

bool groups_follow_rows(const QuantSpec& spec, int64_t row_length) {
  if (spec.rule == QuantRule::kMixedTernaryInt4 || spec.rule == QuantRule::kMixedInt4Int8) return false;
  switch (spec.granularity) {
    case Granularity::kChannel:
    case Granularity::kToken: return true;
    case Granularity::kTensor: return false;
    case Granularity::kBlock: return spec.block_size > 0 && row_length % spec.block_size == 0;
  }
  return false;
}

// ---- quantize --------------------------------------------------------------------------------

namespace {

struct Grouped {
  at::Tensor groups;
  int64_t rows = 0, blocks_per_row = 0;  // for mixed strategies
};

Grouped group(const at::Tensor& input, const QuantSpec& spec) {
  Grouped g;
  switch (spec.granularity) {
    case Granularity::kTensor:
      g.groups = input.reshape({1, input.numel()});
      break;
    case Granularity::kChannel:
    case Granularity::kToken:
      g.groups = input.dim() >= 2 ? input : input.reshape({1, input.numel()});
      break;
    case Granularity::kBlock: {
      const bool mixed = spec.rule == QuantRule::kMixedTernaryInt4 || spec.rule == QuantRule::kMixedInt4Int8;
      const bool state = spec.rule == QuantRule::kMixedInt4Int8;
      // Mixed weights never pad (§2.1); the deprecated state mixed function does (§2.6).
      g.groups = to_blocks(input, spec.block_size, /*allow_padding=*/!mixed || state);
      if (input.dim() >= 1 && input.size(-1) % spec.block_size == 0) {
        g.blocks_per_row = input.size(-1) / spec.block_size;
        g.rows = input.numel() / std::max<int64_t>(1, input.size(-1));
      }
      break;
    }
  }
  return g;
}

at::Tensor ungroup(const at::Tensor& groups, const at::Tensor& input, const QuantSpec& spec) {
  if (spec.granularity == Granularity::kBlock) return from_blocks(groups, input.sizes());
  return groups.reshape(input.sizes());
}

at::Tensor group_mask_shape(const at::Tensor& mask, const at::Tensor& groups) {
  std::vector<int64_t> shape(groups.sizes().begin(), groups.sizes().end() - 1);
  shape.push_back(1);
  return mask.reshape(shape);
}

// codes (float, input dtype), scales, and the INT4 (or INT8) group mask for mixed rules.
struct Computed {
  at::Tensor codes, scales, mask;
};

Computed compute(const at::Tensor& groups, const Grouped& g, const QuantSpec& spec) {
  Computed out;
  switch (spec.rule) {
    case QuantRule::kTernaryAbsmean:
      out.scales = absmean_scale(groups, spec.scale_factor, spec.eps);
      out.codes = groups.div(out.scales).round().clamp(-1, 1);
      break;
    case QuantRule::kTernaryAbsmax:
    case QuantRule::kSymmetricAbsmax:
      out.scales = absmax_scale(groups, spec.qmax, spec.eps);
      out.codes = groups.div(out.scales).round().clamp(-spec.qmax, spec.qmax);
      break;
    case QuantRule::kAsymmetricMax: {
      at::Tensor s = groups.amax(-1, true).div(7);  // signed max
      s = at::where(s.lt(0), groups.abs().amax(-1, true).div(7), s).clamp_min(spec.eps);
      out.scales = s;
      // "+ 8" in the tensor dtype before rounding (§1.5), then back to signed codes -8..7.
      out.codes = groups.div(s).add(8).round().clamp(0, 15).sub(8);
      break;
    }
    case QuantRule::kMixedTernaryInt4:
    case QuantRule::kMixedInt4Int8: {
      const bool weights = spec.rule == QuantRule::kMixedTernaryInt4;
      const at::Tensor blocks = groups.reshape({-1, spec.block_size});
      at::Tensor mask;
      if (weights) {
        mask = mixed_block_mask(spec.strategy,
                                MaskContext{g.rows, g.blocks_per_row, blocks.size(0), spec.mixed_prop, blocks});
      } else {  // §2.6: at least one INT8 block, chosen by variance over the whole tensor
        const int64_t nb = blocks.size(0);
        const int64_t k = std::min<int64_t>(std::max<int64_t>(1, py_int(static_cast<double>(nb) * spec.mixed_prop)), nb);
        mask = at::zeros({nb}, blocks.options().dtype(at::kBool));
        mask.index_fill_(0, std::get<1>(blocks.var(-1, true).topk(k)), true);
      }
      const at::Tensor m = group_mask_shape(mask, groups);
      const int high = weights ? 7 : 127, low = weights ? 1 : 7;
      const at::Tensor s_high = absmax_scale(groups, high, spec.eps);
      const at::Tensor s_low = weights ? absmean_scale(groups, spec.scale_factor, spec.eps)
                                       : absmax_scale(groups, low, spec.eps);
      out.scales = at::where(m, s_high, s_low);
      const at::Tensor limit = at::where(m, at::full({}, high, groups.options()), at::full({}, low, groups.options()));
      const at::Tensor rounded = groups.div(out.scales).round();
      out.codes = at::minimum(at::maximum(rounded, limit.neg()), limit);
      out.mask = mask;
      break;
    }
  }
  return out;
}

}  // namespace

QuantizedTensor quantize(const at::Tensor& input, const QuantSpec& spec) {
  const Grouped g = group(input, spec);
  Computed c = compute(g.groups, g, spec);
  QuantizedTensor q;
  q.codes = c.codes.to(at::kChar);
  q.scales = c.scales;
  q.int4_groups = c.mask;
  q.shape.assign(input.sizes().begin(), input.sizes().end());
  q.numel = input.numel();
  q.spec = spec;
  return q;
}

namespace {

// Groups per chunk in fake_quantize: about 1M elements, so that a chunk's temporaries (abs, the
// fp32 copy the bf16 mean makes, quotient, codes) stay in the last-level cache and come from the
// allocator's small blocks, instead of a dozen passes over full-tensor temporaries (the tied
// 151936 x 1024 table of Qwen3-0.6B made a 594 MiB fp32 copy and five 297 MiB bf16 ones per step).
constexpr int64_t kChunkElements = int64_t{1} << 20;

// Rules whose scale and codes depend on their own group only (the mixed rules pick groups over
// the whole tensor) with groups along the last dimension of the grouped view.
bool per_group_rule(const QuantSpec& spec, const at::Tensor& groups) {
  if (spec.rule == QuantRule::kMixedTernaryInt4 || spec.rule == QuantRule::kMixedInt4Int8) return false;
  return spec.granularity != Granularity::kTensor && groups.dim() >= 2 && groups.size(-1) > 0;
}

// The code limit Q of rules whose codes are clamp(round(x / s), -Q, Q), or 0 for the others
// (asymmetric, mixed). Their division, rounding, clamping and scaling run as one pass over the
// group rows (fake_quant_kernel.h), bit-identical to those four ATen ops, after ATen computes the
// scales: ~2 passes over memory instead of ~6.
float fused_code_limit(const QuantSpec& spec) {
  switch (spec.rule) {
    case QuantRule::kTernaryAbsmean: return 1.0f;
    case QuantRule::kTernaryAbsmax:
    case QuantRule::kSymmetricAbsmax: return static_cast<float>(spec.qmax);
    default: return 0.0f;
  }
}

bool fusable_rows(const at::Tensor& groups) {
  const auto dt = groups.scalar_type();
  return groups.device().is_cpu() && (dt == at::kFloat || dt == at::kBFloat16) && groups.is_contiguous() &&
         groups.dim() >= 1 && groups.size(-1) > 0;
}

at::Tensor scales_of(const at::Tensor& groups, const QuantSpec& spec) {
  return spec.rule == QuantRule::kTernaryAbsmean ? absmean_scale(groups, spec.scale_factor, spec.eps)
                                                 : absmax_scale(groups, spec.qmax, spec.eps);
}

// out (rows, len) = fake quantization of rows (rows, len) with scales (rows, 1), same dtype.
void fused_fake_quant(const at::Tensor& rows, const at::Tensor& scales, at::Tensor& out, float limit) {
  const int64_t len = rows.size(1);
  const bool bf16 = rows.scalar_type() == at::kBFloat16;
  const auto u16 = [](const at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); };
  // ~16K elements a task: enough work per thread wake-up, many tasks per tensor.
  at::parallel_for(0, rows.size(0), std::max<int64_t>(1, (int64_t{1} << 14) / len), [&](int64_t b, int64_t e) {
    if (bf16)
      fake_quant_rows_bf16(u16(rows) + b * len, u16(scales) + b, u16(out) + b * len, e - b, len, limit);
    else
      fake_quant_rows_f32(rows.data_ptr<float>() + b * len, scales.data_ptr<float>() + b,
                          out.data_ptr<float>() + b * len, e - b, len, limit);
  });
}

// rows (n, len) -> out (n, len): ATen's scales, then the fused pass or ATen's codes.
void fake_quantize_rows(const at::Tensor& rows, const Grouped& g, const QuantSpec& spec, bool fused,
                        at::Tensor& out) {
  if (fused) {
    const at::Tensor scales = scales_of(rows, spec).contiguous();
    fused_fake_quant(rows, scales, out, fused_code_limit(spec));
    return;
  }
  const Computed c = compute(rows, g, spec);
  at::mul_out(out, c.codes, c.scales);
}

}  // namespace

at::Tensor fake_quantize(const at::Tensor& input, const QuantSpec& spec) {
  const Grouped g = group(input, spec);
  const bool fused = fused_code_limit(spec) > 0 && fusable_rows(g.groups);
  const bool chunked = per_group_rule(spec, g.groups) && g.groups.numel() >= 2 * kChunkElements;
  if (!fused && !chunked) {
    Computed c = compute(g.groups, g, spec);
    return ungroup(c.codes.mul(c.scales), input, spec);
  }
  const int64_t group_len = g.groups.size(-1);
  const at::Tensor rows = g.groups.reshape({-1, group_len});
  at::Tensor out = at::empty_like(rows, at::MemoryFormat::Contiguous);
  // Chunks of whole groups: each element sees the same ops as in one pass over the tensor, and
  // each group's reduction the same order (rows are reduced independently), so the result is
  // bit-identical to it (tests/quant: the spec vectors and the one-pass comparison). A per-tensor
  // scale is one group: one chunk.
  const int64_t chunk_groups = chunked ? std::max<int64_t>(1, kChunkElements / group_len) : rows.size(0);
  for (int64_t r0 = 0; r0 < rows.size(0); r0 += chunk_groups) {
    const int64_t n = std::min(chunk_groups, rows.size(0) - r0);
    at::Tensor part = out.narrow(0, r0, n);
    fake_quantize_rows(rows.narrow(0, r0, n), g, spec, fused, part);
  }
  return ungroup(out.view(g.groups.sizes()), input, spec);
}

at::Tensor QuantizedTensor::dequantize() const {
  const at::Tensor values = codes.to(scales.scalar_type()).mul(scales);
  if (spec.granularity == Granularity::kBlock) return from_blocks(values, shape);
  return values.reshape(shape);
}

}  // namespace edgerazor::quant
