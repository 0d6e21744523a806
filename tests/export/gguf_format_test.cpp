// ggml block packing, fp16, the packed-checkpoint primitives (spec §11 vectors) and the GGUF
// writer/reader, including hostile files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "edgerazor/core/error.h"
#include "edgerazor/export/gguf.h"
#include "edgerazor/export/gguf_names.h"
#include "edgerazor/export/gguf_tokenizer.h"
#include "edgerazor/export/packed.h"
#include "export_test_util.h"

namespace {
using namespace edgerazor::exporter;
using ::testing::HasSubstr;
using export_test::TempDirTest;

std::vector<int8_t> random_codes(int64_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> c(static_cast<size_t>(n));
  for (auto& x : c) x = static_cast<int8_t>(d(rng));
  return c;
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);       // rounds up to infinity
  EXPECT_EQ(fp32_to_fp16(0.1f), 0x2e66);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // half of it: ties to even (0)
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even mantissa
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // Every fp16 value survives fp16 -> fp32 -> fp16; bf16 values in the normal range are exact.
  for (uint32_t h = 0; h < 0x7c00; ++h) ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h);
  EXPECT_EQ(fp16_to_fp32(fp32_to_fp16(0.314453125f)), 0.314453125f);  // a bf16 scale
}

TEST(GgmlBlocks, PackUnpackRoundTripEveryType) {
  for (GgmlType t : {GgmlType::kTQ1_0, GgmlType::kTQ2_0, GgmlType::kQ4_0, GgmlType::kQ8_0}) {
    const int64_t n = 512;
    const auto codes = random_codes(n, ggml_min_code(t), ggml_max_code(t), 3);
    std::vector<uint16_t> d(static_cast<size_t>(n / ggml_block_size(t)));
    for (size_t b = 0; b < d.size(); ++b) d[b] = fp32_to_fp16(0.01f * static_cast<float>(b + 1));
    std::vector<uint8_t> bytes(ggml_row_bytes(t, n));
    pack_blocks(t, codes.data(), d.data(), n, bytes.data());
    std::vector<int8_t> back(static_cast<size_t>(n));
    std::vector<uint16_t> d_back(d.size());
    unpack_blocks(t, bytes.data(), n, back.data(), d_back.data());
    EXPECT_EQ(back, codes) << ggml_type_name(t);
    EXPECT_EQ(d_back, d) << ggml_type_name(t);
    std::vector<float> values(static_cast<size_t>(n));
    dequantize_row(t, bytes.data(), n, values.data());
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(values[i], codes[i] * fp16_to_fp32(d[i / ggml_block_size(t)])) << ggml_type_name(t) << " " << i;
  }
  EXPECT_EQ(ggml_row_bytes(GgmlType::kTQ2_0, 256), 66u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::kTQ1_0, 256), 54u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::kQ4_0, 32), 18u);
  EXPECT_THROW(ggml_row_bytes(GgmlType::kQ4_0, 48), std::invalid_argument);
}

TEST(GgmlBlocks, ByteLayoutsFollowGgml) {
  // TQ2_0: element e in byte 32*(e/128) + e%32 at shift 2*((e%128)/32); d after the 64 bytes.
  std::vector<int8_t> c(256, -1);  // code 0 everywhere
  c[0] = 1;    // byte 0, shift 0 -> 2
  c[33] = 1;   // byte 1, shift 2 -> 8
  c[200] = 0;  // byte 32 + 8 = 40, shift 2*(72/32)=4 -> 1<<4
  uint16_t d = fp32_to_fp16(0.5f);
  std::vector<uint8_t> b(66);
  pack_blocks(GgmlType::kTQ2_0, c.data(), &d, 256, b.data());
  EXPECT_EQ(b[0], 2);
  EXPECT_EQ(b[1], 8);
  EXPECT_EQ(b[40], 16);
  EXPECT_EQ(b[64] | (b[65] << 8), 0x3800);
  // TQ1_0: all-zero codes (trit 1 everywhere): 5 trits 11111 (base 3) = 121 -> ceil(121*256/243) = 128.
  std::vector<int8_t> z(256, 0);
  std::vector<uint8_t> t1(54);
  pack_blocks(GgmlType::kTQ1_0, z.data(), &d, 256, t1.data());
  EXPECT_EQ(t1[0], 128);
  EXPECT_EQ(t1[47], 128);
  EXPECT_EQ(t1[48], (40 * 3 * 256 + 242) / 243);  // 4 trits 1111 = 40, then *3 padding
  // Q4_0: d first; low nibble element j, high nibble element j+16, code + 8.
  std::vector<int8_t> q(32, 0);
  q[0] = -7;
  q[16] = 7;
  std::vector<uint8_t> q4(18);
  pack_blocks(GgmlType::kQ4_0, q.data(), &d, 32, q4.data());
  EXPECT_EQ(q4[0] | (q4[1] << 8), 0x3800);
  EXPECT_EQ(q4[2], (1) | (15 << 4));
  EXPECT_EQ(q4[3], 8 | (8 << 4));
  // Codes outside a type's range are refused, never clipped.
  q[5] = 8;
  EXPECT_THROW(pack_blocks(GgmlType::kQ4_0, q.data(), &d, 32, q4.data()), std::invalid_argument);
}

TEST(PackedPrimitives, SpecVectors) {
  const int8_t int4[] = {-7, 7, 0, 1};
  EXPECT_EQ(pack_int4(int4, 4), (std::vector<uint8_t>{31, 137}));
  const int8_t tern[] = {-1, 0, 1, -1};
  EXPECT_EQ(pack_ternary_2bit(tern, 4), (std::vector<uint8_t>{121}));
  const int8_t five[] = {-1, 0, 1, -1, 1, 0};  // base 3: 0 + 1*3 + 2*9 + 0*27 + 2*81 = 183, then 1
  EXPECT_EQ(pack_ternary_base3(five, 6), (std::vector<uint8_t>{183, 1}));
  for (int64_t n : {1, 4, 5, 7, 1000, 1003}) {
    const auto c3 = random_codes(n, -1, 1, static_cast<uint32_t>(n));
    const auto c4 = random_codes(n, -8, 7, static_cast<uint32_t>(n));
    std::vector<int8_t> back(static_cast<size_t>(n));
    unpack_ternary_base3(pack_ternary_base3(c3.data(), n).data(), n, back.data());
    EXPECT_EQ(back, c3);
    unpack_ternary_2bit(pack_ternary_2bit(c3.data(), n).data(), n, back.data());
    EXPECT_EQ(back, c3);
    unpack_int4(pack_int4(c4.data(), n).data(), n, back.data());
    EXPECT_EQ(back, c4);
  }
  EXPECT_EQ(pack_ternary_base3(five, 1000 / 200).size(), 1u);
}

TEST(GgufNames, MapsHuggingFaceNames) {
  EXPECT_EQ(gguf_tensor_name("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.12.self_attn.q_proj.weight"), "blk.12.attn_q.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.0.mlp.down_proj.weight"), "blk.0.ffn_down.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.3.self_attn.k_norm.weight"), "blk.3.attn_k_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.norm.weight"), "output_norm.weight");
  EXPECT_EQ(gguf_tensor_name("lm_head.weight"), "output.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.0.weird.weight"), std::nullopt);
  EXPECT_EQ(gguf_arch_key(GgufArchKey::kHeadCountKv, edgerazor::model::Architecture::kQwen3), "qwen3.attention.head_count_kv");
  EXPECT_EQ(gguf_pre_tokenizer_name({"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"}), "qwen2");
  EXPECT_EQ(gguf_pre_tokenizer_name({"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?"}), "llama-bpe");
  EXPECT_EQ(gguf_pre_tokenizer_name({"x"}), "");
}

class GgufFileTest : public TempDirTest {
 protected:
  std::string write_sample(uint32_t alignment = 32) {
    GgufWriter w(alignment);
    w.set("general.architecture", GgufValue::string("llama"));
    w.set("a.u32", GgufValue::u32(7));
    w.set("a.f32", GgufValue::f32(0.5f));
    w.set("a.bool", GgufValue::boolean(true));
    w.set("a.strings", GgufValue::string_array({"x", "", "yz"}));
    w.set("a.ints", GgufValue::i32_array({-1, 2, 3}));
    w.set("a.floats", GgufValue::f32_array({1.5, -2}));
    std::vector<uint8_t> f32(3 * 4 * 4);
    for (int i = 0; i < 12; ++i) {
      const float v = static_cast<float>(i) - 3.5f;
      std::memcpy(&f32[4 * i], &v, 4);
    }
    w.add_tensor("t.f32", GgmlType::kF32, {3, 4}, f32);
    std::vector<int8_t> codes(64, 1);
    codes[5] = -1;
    std::vector<uint16_t> d = {fp32_to_fp16(0.25f), fp32_to_fp16(2.0f)};
    std::vector<uint8_t> q(36);
    pack_blocks(GgmlType::kQ4_0, codes.data(), d.data(), 64, q.data());
    w.add_tensor("t.q4", GgmlType::kQ4_0, {1, 64}, q);
    const std::string path = (dir_ / "sample.gguf").string();
    w.write(path);
    return path;
  }
  std::string bytes_of(const std::string& path) { return export_test::read_text(path); }
  std::string save(const std::string& name, const std::string& bytes) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  std::string error_of(const std::string& path) {
    try {
      GgufFile::open(path);
    } catch (const edgerazor::FormatError& e) {
      return e.what();
    }
    return "no error";
  }
};

TEST_F(GgufFileTest, WriteReadRoundTrip) {
  const auto g = GgufFile::open(write_sample());
  EXPECT_EQ(g->version(), 3u);
  ASSERT_NE(g->find("a.u32"), nullptr);
  EXPECT_EQ(g->find("a.u32")->type, GgufType::kUint32);
  EXPECT_EQ(g->find("a.u32")->u, 7u);
  EXPECT_EQ(g->find("a.f32")->f, 0.5);
  EXPECT_EQ(g->find("a.bool")->u, 1u);
  EXPECT_EQ(g->find("a.strings")->strings, (std::vector<std::string>{"x", "", "yz"}));
  EXPECT_EQ(g->find("a.ints")->array_type, GgufType::kInt32);
  EXPECT_EQ(g->find("a.ints")->ints, (std::vector<int64_t>{-1, 2, 3}));
  EXPECT_EQ(g->find("a.floats")->floats, (std::vector<double>{1.5, -2}));
  const GgufTensorInfo* t = g->find_tensor("t.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(g->dequantize(*t)[11], 7.5f);
  const GgufTensorInfo* q = g->find_tensor("t.q4");
  EXPECT_EQ(q->offset, 64u);  // 48 bytes padded to 32
  EXPECT_EQ(g->data_offset() % 32, 0u);
  const auto v = g->dequantize(*q);
  EXPECT_EQ(v[0], 0.25f);
  EXPECT_EQ(v[5], -0.25f);
  EXPECT_EQ(v[40], 2.0f);
  EXPECT_EQ(g->file_size(), g->data_offset() + 64 + 64);
}

TEST_F(GgufFileTest, WriterRefusesInconsistentInput) {
  GgufWriter w;
  w.set("k", GgufValue::u32(1));
  EXPECT_THROW(w.set("k", GgufValue::u32(2)), std::invalid_argument);
  EXPECT_THROW(w.add_tensor("x", GgmlType::kF32, {2, 2}, std::vector<uint8_t>(15)), std::invalid_argument);
  EXPECT_THROW(w.add_tensor("y", GgmlType::kQ4_0, {2, 48}, std::vector<uint8_t>(54)), std::invalid_argument);
  EXPECT_THROW(w.add_tensor(std::string(64, 'n'), GgmlType::kF32, {1}, std::vector<uint8_t>(4)), std::invalid_argument);
  EXPECT_THROW(GgufWriter(24), std::invalid_argument);
}

TEST_F(GgufFileTest, HostileFilesNameTheFileAndTheProblem) {
  const std::string good = bytes_of(write_sample());
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_THAT(error_of(save("magic.gguf", bad)), HasSubstr("magic.gguf: at byte 0: bad magic"));
  bad = good;
  bad[4] = 9;
  EXPECT_THAT(error_of(save("version.gguf", bad)), HasSubstr("unsupported GGUF version 9"));
  EXPECT_THAT(error_of(save("trunc.gguf", good.substr(0, 60))), HasSubstr("trunc.gguf"));
  EXPECT_THAT(error_of(save("trunc_data.gguf", good.substr(0, good.size() - 40))),
              HasSubstr("tensor 't.q4' data (36 bytes) runs past the end of the file"));
  // The first key's string length (bytes 24..31) made huge.
  bad = good;
  bad[24 + 6] = 0x10;
  EXPECT_THAT(error_of(save("strlen.gguf", bad)), HasSubstr("exceeds the"));
  // A duplicate key: rename "a.f32" to "a.u32".
  bad = good;
  bad.replace(bad.find("a.f32"), 5, "a.u32");
  EXPECT_THAT(error_of(save("dup.gguf", bad)), HasSubstr("duplicate key 'a.u32'"));
  // A wrong offset for the second tensor (its uint64 offset sits 8 bytes before the header pad).
  bad = good;
  const size_t q4_info = bad.find("t.q4") + 4;  // after the name: n_dims(4) ne(16) type(4) offset(8)
  bad[q4_info + 4 + 16 + 4] = 8;
  EXPECT_THAT(error_of(save("offset.gguf", bad)), HasSubstr("tensor 't.q4' has offset 8, expected 64"));
  // An unknown ggml type.
  bad = good;
  bad[q4_info + 4 + 16] = 99;
  EXPECT_THAT(error_of(save("type.gguf", bad)), HasSubstr("tensor 't.q4' has unsupported ggml type 99"));
  // A row length that is no multiple of the block (Q4_0 with ne0 = 48).
  bad = good;
  bad[q4_info + 4] = 48;
  EXPECT_THAT(error_of(save("block.gguf", bad)), HasSubstr("row length 48 is not a multiple of the Q4_0 block size 32"));
  // Too many dimensions.
  bad = good;
  bad[q4_info] = 5;
  EXPECT_THAT(error_of(save("dims.gguf", bad)), HasSubstr("has 5 dimensions"));
}

}  // namespace
