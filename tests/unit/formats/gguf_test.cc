// The GGUF reader and writer against bytes written by hand from the spec (gguf_bytes.h): the
// reader parses a hand-built file, the writer reproduces it byte for byte, and every value and
// tensor type survives a round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "format_test_util.h"
#include "formats/gguf.h"
#include "gguf_bytes.h"

namespace jetmoe {
namespace {

using testing::contains_all;
using testing::error_message;
using testing::GgufBytes;
using testing::TempDir;
namespace t = testing;

template <typename T>
std::string packed(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A file with one metadata entry of every type and two tensors, alignment 64:
//   w: F32, ne = [3, 2] (PyTorch shape [2, 3]) holding 0..5, at offset 0
//   q: Q8_0, ne = [32], one block with scale 1.0 (f16 0x3c00) and quants -16..15, at offset 64
struct HandBuiltFile {
  GgufBytes bytes;
  uint64_t infos_end = 0;  // where the tensor infos end (the data section starts at the next multiple of 64)

  HandBuiltFile() {
    bytes.header(2, 17);
    bytes.kv_str("general.architecture", "jetmoe");
    bytes.kv_u32("general.alignment", 64);
    bytes.key("t.u8", t::kU8).u8(200);
    bytes.key("t.i8", t::kI8).put<int8_t>(-100);
    bytes.key("t.u16", t::kU16).put<uint16_t>(65000);
    bytes.key("t.i16", t::kI16).put<int16_t>(-1234);
    bytes.key("t.i32", t::kI32).put<int32_t>(-123456789);
    bytes.key("t.f32", t::kF32).put<float>(0.1f);
    bytes.key("t.bool", t::kBool).u8(1);
    bytes.key("t.u64", t::kU64).u64(uint64_t(1) << 63);
    bytes.key("t.i64", t::kI64).put<int64_t>(-(int64_t(1) << 40));
    bytes.key("t.f64", t::kF64).put<double>(1e-5);
    bytes.key("t.ints", t::kArray).u32(t::kI32).u64(3).put<int32_t>(1).put<int32_t>(-2).put<int32_t>(3);
    bytes.key("t.strings", t::kArray).u32(t::kString).u64(2).str("a").str("bc");
    bytes.key("t.nested", t::kArray).u32(t::kArray).u64(2);
    bytes.u32(t::kU8).u64(2).u8(1).u8(2);
    bytes.u32(t::kU8).u64(1).u8(3);
    bytes.key("t.bools", t::kArray).u32(t::kBool).u64(2).u8(0).u8(1);
    bytes.kv_str("t.utf8", "caf\xc3\xa9");
    bytes.tensor("w", {3, 2}, t::kGgmlF32, 0);
    bytes.tensor("q", {32}, t::kGgmlQ8_0, 64);
    infos_end = bytes.size();
    bytes.pad_to(64);
    for (int i = 0; i < 6; ++i) bytes.put<float>(float(i));
    bytes.pad_to(64);
    bytes.put<uint16_t>(0x3c00);
    for (int j = 0; j < 32; ++j) bytes.put<int8_t>(int8_t(j - 16));
    bytes.pad_to(64);  // as ggml writes it: every tensor padded, the last one too
  }
};

TEST(Gguf, ReadsAFileBuiltFromTheSpec) {
  TempDir dir;
  const HandBuiltFile hand;
  t::write_bytes(dir.file("hand.gguf"), hand.bytes.bytes());
  const GgufFile file(dir.file("hand.gguf"));

  EXPECT_EQ(file.alignment(), 64u);
  EXPECT_EQ(file.data_offset(), (hand.infos_end + 63) / 64 * 64);
  ASSERT_EQ(file.metadata().size(), 17u);
  EXPECT_EQ(file.metadata()[0].key, "general.architecture");  // file order kept
  EXPECT_EQ(file.find("general.architecture")->text, "jetmoe");
  EXPECT_EQ(file.find("t.u8")->as_int(), 200);
  EXPECT_EQ(file.find("t.i8")->as_int(), -100);
  EXPECT_EQ(file.find("t.u16")->as_int(), 65000);
  EXPECT_EQ(file.find("t.i16")->as_int(), -1234);
  EXPECT_EQ(file.find("t.i32")->as_int(), -123456789);
  EXPECT_EQ(file.find("t.f32")->as_float(), double(0.1f));
  EXPECT_EQ(file.find("t.bool")->as_bool(), true);
  EXPECT_EQ(file.find("t.u64")->type, GgufType::kUint64);
  EXPECT_EQ(file.find("t.u64")->bits, uint64_t(1) << 63);
  EXPECT_EQ(file.find("t.u64")->as_int(), std::nullopt);  // beyond int64
  EXPECT_EQ(file.find("t.i64")->as_int(), -(int64_t(1) << 40));
  EXPECT_EQ(file.find("t.f64")->as_float(), 1e-5);
  EXPECT_EQ(file.find("t.f64")->as_int(), std::nullopt);
  const GgufValue& ints = *file.find("t.ints");
  EXPECT_EQ(ints.type_phrase(), "array of int32");
  EXPECT_EQ(ints.array_size, 3u);
  EXPECT_EQ(ints.packed, packed<int32_t>({1, -2, 3}));
  EXPECT_EQ(file.find("t.strings")->strings, (std::vector<std::string>{"a", "bc"}));
  const GgufValue& nested = *file.find("t.nested");
  ASSERT_EQ(nested.arrays.size(), 2u);
  EXPECT_EQ(nested.arrays[0].packed, std::string("\x01\x02", 2));
  EXPECT_EQ(nested.arrays[1].packed, std::string("\x03", 1));
  EXPECT_EQ(file.find("t.bools")->packed, std::string("\x00\x01", 2));
  EXPECT_EQ(file.find("t.utf8")->text, "caf\xc3\xa9");
  EXPECT_EQ(file.find("t.missing"), nullptr);

  ASSERT_EQ(file.tensors().size(), 2u);
  const GgufTensor& w = file.tensors()[0];
  EXPECT_EQ(w.name, "w");
  EXPECT_EQ(w.view.shape, (Shape{2, 3}));  // ne reversed
  EXPECT_EQ(w.view.dtype, DType::F32);
  const auto* values = static_cast<const float*>(w.view.data);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(values[i], float(i));
  const GgufTensor& q = file.tensors()[1];
  EXPECT_EQ(q.offset, 64u);
  EXPECT_EQ(q.view.dtype, DType::Q8_0);
  EXPECT_EQ(q.view.nbytes(), 34u);
  float dequantized[32];
  to_f32(q.view.dtype, q.view.data, dequantized, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(dequantized[j], float(j - 16));
  // Zero-copy: the views point into the file's bytes.
  const std::string bytes = t::read_bytes(dir.file("hand.gguf"));
  EXPECT_EQ(std::memcmp(q.view.data, bytes.data() + file.data_offset() + 64, 34), 0);
}

TEST(Gguf, WriterReproducesTheHandBuiltFile) {
  TempDir dir;
  const HandBuiltFile hand;
  std::vector<float> w_values = {0, 1, 2, 3, 4, 5};
  std::string q_block;
  q_block += std::string("\x00\x3c", 2);
  for (int j = 0; j < 32; ++j) q_block += char(int8_t(j - 16));

  GgufWriter writer(64);
  writer.set("general.architecture", GgufValue::of_string("jetmoe"));
  writer.set("general.alignment", GgufValue::of_u32(64));
  auto scalar = [](GgufType type, uint64_t bits) {
    GgufValue v;
    v.type = type;
    v.bits = bits;
    return v;
  };
  writer.set("t.u8", scalar(GgufType::kUint8, 200));
  writer.set("t.i8", scalar(GgufType::kInt8, uint8_t(-100)));
  writer.set("t.u16", scalar(GgufType::kUint16, 65000));
  writer.set("t.i16", scalar(GgufType::kInt16, uint16_t(-1234)));
  writer.set("t.i32", GgufValue::of_i32(-123456789));
  writer.set("t.f32", GgufValue::of_f32(0.1f));
  writer.set("t.bool", GgufValue::of_bool(true));
  writer.set("t.u64", GgufValue::of_u64(uint64_t(1) << 63));
  writer.set("t.i64", scalar(GgufType::kInt64, uint64_t(-(int64_t(1) << 40))));
  writer.set("t.f64", GgufValue::of_f64(1e-5));
  writer.set("t.ints", GgufValue::of_packed(GgufType::kInt32, packed<int32_t>({1, -2, 3})));
  writer.set("t.strings", GgufValue::of_strings({"a", "bc"}));
  GgufValue nested;
  nested.type = GgufType::kArray;
  nested.array_type = GgufType::kArray;
  nested.array_size = 2;
  nested.arrays = {GgufValue::of_bytes("\x01\x02"), GgufValue::of_bytes("\x03")};
  writer.set("t.nested", nested);
  writer.set("t.bools", GgufValue::of_packed(GgufType::kBool, std::string("\x00\x01", 2)));
  writer.set("t.utf8", GgufValue::of_string("caf\xc3\xa9"));
  writer.add_tensor("w", TensorView{DType::F32, {2, 3}, w_values.data()});
  writer.add_tensor("q", DType::Q8_0, {32},
                    [&](unsigned char* out) { std::memcpy(out, q_block.data(), q_block.size()); });
  const uint64_t size = writer.write(dir.file("written.gguf"));

  const std::string written = t::read_bytes(dir.file("written.gguf"));
  EXPECT_EQ(size, written.size());
  ASSERT_EQ(written.size(), hand.bytes.size());
  for (size_t i = 0; i < written.size(); ++i) ASSERT_EQ(written[i], hand.bytes.bytes()[i]) << "first difference at byte " << i;
}

// Every tensor type, every rank, default alignment, data produced by callbacks and given as views.
TEST(Gguf, RoundTripsEveryTensorTypeAndRank) {
  TempDir dir;
  struct Case {
    std::string name;
    DType dtype;
    Shape shape;
  };
  const std::vector<Case> cases = {
      {"f32.1d", DType::F32, {5}},          {"f16.2d", DType::F16, {3, 7}},       {"bf16.3d", DType::BF16, {2, 3, 5}},
      {"q8.4d", DType::Q8_0, {2, 1, 3, 64}}, {"q4.2d", DType::Q4_0, {3, 96}},      {"empty", DType::F32, {0, 4}},
      {"q4k.3d", DType::Q4_K, {2, 3, 512}}, {"q5k.2d", DType::Q5_K, {3, 256}}, {"q6k.2d", DType::Q6_K, {2, 512}},
  };
  std::vector<std::string> data;
  data.reserve(cases.size());  // the views below point into these strings
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::of_string("test"));
  for (size_t i = 0; i < cases.size(); ++i) {
    const size_t bytes = dtype_bytes(cases[i].dtype, shape_numel(cases[i].shape));
    std::string content(bytes, '\0');
    for (size_t b = 0; b < bytes; ++b) content[b] = char((b * 131 + i * 7) & 0xff);
    data.push_back(content);
    if (i % 2 == 0) {
      writer.add_tensor(cases[i].name, TensorView{cases[i].dtype, cases[i].shape, data.back().data()});
    } else {
      writer.add_tensor(cases[i].name, cases[i].dtype, cases[i].shape,
                        [content](unsigned char* out) { std::memcpy(out, content.data(), content.size()); });
    }
  }
  writer.write(dir.file("all.gguf"));

  const GgufFile file(dir.file("all.gguf"));
  EXPECT_EQ(file.alignment(), kGgufDefaultAlignment);
  EXPECT_EQ(file.data_offset() % 32, 0u);
  ASSERT_EQ(file.tensors().size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const GgufTensor& tensor = file.tensors()[i];
    EXPECT_EQ(tensor.name, cases[i].name);
    EXPECT_EQ(tensor.view.dtype, cases[i].dtype) << tensor.name;
    EXPECT_EQ(tensor.view.shape, cases[i].shape) << tensor.name;
    EXPECT_EQ(tensor.offset % 32, 0u) << tensor.name;
    EXPECT_EQ(tensor.ggml_type, ggml_type_of(cases[i].dtype));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(tensor.view.data) % 32, 0u) << tensor.name;
    ASSERT_EQ(tensor.view.nbytes(), data[i].size()) << tensor.name;
    EXPECT_EQ(std::memcmp(tensor.view.data, data[i].data(), data[i].size()), 0) << tensor.name;
  }
}

TEST(Gguf, GgmlTypeIdsFollowTheSpec) {
  EXPECT_EQ(ggml_type_of(DType::F32), 0u);
  EXPECT_EQ(ggml_type_of(DType::F16), 1u);
  EXPECT_EQ(ggml_type_of(DType::Q4_0), 2u);
  EXPECT_EQ(ggml_type_of(DType::Q8_0), 8u);
  EXPECT_EQ(ggml_type_of(DType::Q4_K), 12u);
  EXPECT_EQ(ggml_type_of(DType::Q5_K), 13u);
  EXPECT_EQ(ggml_type_of(DType::Q6_K), 14u);
  EXPECT_EQ(ggml_type_of(DType::BF16), 30u);
  for (DType dtype : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    DType back;
    ASSERT_TRUE(dtype_of_ggml_type(ggml_type_of(dtype), &back));
    EXPECT_EQ(back, dtype);
    EXPECT_EQ(ggml_type_name(ggml_type_of(dtype)), dtype_name(dtype));
  }
  DType unused;
  EXPECT_FALSE(dtype_of_ggml_type(11, &unused));  // Q3_K
  EXPECT_EQ(ggml_type_name(11), "Q3_K");
}

TEST(Gguf, WriterRefusesWhatReadersWouldReject) {
  TempDir dir;
  GgufWriter writer;
  writer.set("general.name", GgufValue::of_string("x"));
  EXPECT_TRUE(contains_all(error_message([&] { writer.set("general.name", GgufValue::of_string("y")); }),
                           {"'general.name'", "set twice"}));
  EXPECT_TRUE(contains_all(error_message([&] { writer.set("", GgufValue::of_u32(1)); }), {"0 bytes"}));
  EXPECT_TRUE(contains_all(error_message([&] { writer.set("a\tb", GgufValue::of_u32(1)); }), {"not printable ASCII"}));
  EXPECT_TRUE(contains_all(error_message([&] { writer.set("general.alignment", GgufValue::of_u32(64)); }),
                           {"general.alignment", "uint32 32"}));
  GgufValue inconsistent = GgufValue::of_strings({"a"});
  inconsistent.array_size = 2;
  EXPECT_TRUE(contains_all(error_message([&] { writer.set("t.bad", inconsistent); }), {"'t.bad'", "declares 2", "holds 1"}));

  float value = 0;
  EXPECT_TRUE(contains_all(error_message([&] { writer.add_tensor(std::string(64, 'n'), TensorView{DType::F32, {1}, &value}); }),
                           {"64 bytes", "1 to 63"}));
  writer.add_tensor("w", TensorView{DType::F32, {1}, &value});
  EXPECT_TRUE(contains_all(error_message([&] { writer.add_tensor("w", TensorView{DType::F32, {1}, &value}); }),
                           {"'w'", "added twice"}));
  EXPECT_TRUE(contains_all(error_message([&] { writer.add_tensor("q", DType::Q8_0, {2, 48}, nullptr); }),
                           {"'q'", "rows of 48", "Q8_0"}));
  EXPECT_TRUE(contains_all(error_message([&] { writer.add_tensor("r", DType::F32, {1, 1, 1, 1, 1}, nullptr); }),
                           {"'r'", "5 dimensions"}));
  EXPECT_TRUE(contains_all(error_message([] { GgufWriter odd(48); }), {"alignment 48", "power of two"}));
  GgufWriter undeclared(64);
  EXPECT_TRUE(contains_all(error_message([&] { undeclared.write(dir.file("x.gguf")); }),
                           {"x.gguf", "general.alignment"}));
}

TEST(Gguf, LooksLikeGgufChecksTheMagic) {
  TempDir dir;
  t::write_bytes(dir.file("a.gguf"), GgufBytes().header(0, 0).bytes());
  t::write_bytes(dir.file("b.gguf"), "{\"model\": 1}");
  EXPECT_TRUE(looks_like_gguf(dir.file("a.gguf")));
  EXPECT_FALSE(looks_like_gguf(dir.file("b.gguf")));
  EXPECT_FALSE(looks_like_gguf(dir.path()));
  EXPECT_FALSE(looks_like_gguf(dir.file("missing.gguf")));
  const GgufFile empty(dir.file("a.gguf"));  // no metadata, no tensors: valid
  EXPECT_TRUE(empty.tensors().empty());
}

}  // namespace
}  // namespace jetmoe
