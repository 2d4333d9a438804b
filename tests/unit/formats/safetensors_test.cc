// safetensors reader and writer on well-formed files: our round trip, files written by an
// independent writer (tests/unit/formats/make_fixtures.py), and the HF reference checkpoints.
// Malformed files are in safetensors_hostile_test.cc.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "format_test_util.h"

namespace jetmoe {
namespace {

using nlohmann::json;
using testing::contains_all;
using testing::error_message;
using testing::fixture;
using testing::TempDir;

std::vector<float> decode(const TensorView& view) {
  std::vector<float> out(size_t(view.numel()));
  if (!out.empty()) to_f32(view.dtype, view.data, out.data(), out.size());
  return out;
}

// memcmp that accepts empty ranges (whose pointers may be null).
bool same_bytes(const void* a, const void* b, size_t n) { return n == 0 || std::memcmp(a, b, n) == 0; }

// Bitwise, so that -0.0 and 0.0 differ.
bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

void expect_values(const TensorView& view, const json& expected) {
  const std::vector<float> got = decode(view);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(same_bits(got[i], expected[i].get<float>())) << "element " << i << ": " << got[i] << " vs " << expected[i];
  }
}

bool aligned(const TensorView& view) { return reinterpret_cast<uintptr_t>(view.data) % dtype_size(view.dtype) == 0; }

// Owns the bytes of one tensor for writing.
struct OwnedTensor {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<uint16_t> half;  // BF16 / F16 payload
  std::vector<float> single;   // F32 payload

  OwnedTensor(std::string n, DType t, Shape s) : name(std::move(n)), dtype(t), shape(std::move(s)) {
    const size_t count = size_t(shape_numel(shape));
    std::vector<float> values(count);
    for (size_t i = 0; i < count; ++i) values[i] = float(int(i % 23) - 11) * 0.375f + float(name.size());
    if (dtype == DType::F32) {
      single = values;
    } else {
      half.resize(count);
      from_f32(dtype, values.data(), half.data(), count);
    }
  }
  NamedTensor named() const {
    const void* data = dtype == DType::F32 ? static_cast<const void*>(single.data()) : half.data();
    return NamedTensor{name, TensorView{dtype, shape, data}};
  }
};

TEST(Safetensors, RoundTripsEveryDtype) {
  TempDir dir;
  const std::vector<OwnedTensor> owned = {
      {"z.last", DType::F32, {3, 5}},   {"a.bf16", DType::BF16, {7}},  {"m.f16", DType::F16, {2, 3, 3}},
      {"scalar", DType::F32, {}},       {"empty", DType::BF16, {0, 4}}, {"odd.bf16", DType::BF16, {3}},
      {"after.odd", DType::F32, {2, 2}},
  };
  std::vector<NamedTensor> tensors;
  for (const auto& t : owned) tensors.push_back(t.named());
  const std::string path = dir.file("round.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "ünïcode"}});

  const SafetensorsFile file(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "ünïcode"}}));
  ASSERT_EQ(file.tensors().size(), owned.size());
  for (const auto& t : owned) {
    SCOPED_TRACE(t.name);
    const TensorView& view = file.tensors().at(t.name);
    EXPECT_EQ(view.dtype, t.dtype);
    EXPECT_EQ(view.shape, t.shape);
    EXPECT_TRUE(aligned(view));
    const void* source = t.dtype == DType::F32 ? static_cast<const void*>(t.single.data()) : t.half.data();
    EXPECT_TRUE(same_bytes(view.data, source, view.nbytes()));
  }
  // No temporary file is left behind.
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename(), "round.safetensors");
  }
}

// Checks the written bytes with a parse independent of our reader.
TEST(Safetensors, WriterLayoutFollowsTheFormat) {
  TempDir dir;
  const std::vector<OwnedTensor> owned = {{"b", DType::BF16, {3}}, {"a", DType::F32, {2}}, {"c", DType::F16, {1}}};
  std::vector<NamedTensor> tensors;
  for (const auto& t : owned) tensors.push_back(t.named());
  const std::string path = dir.file("layout.safetensors");
  write_safetensors(path, tensors);

  const std::string bytes = testing::read_bytes(path);
  uint64_t header_size;
  std::memcpy(&header_size, bytes.data(), 8);
  EXPECT_EQ((8 + header_size) % 8, 0u) << "data must start 8-byte aligned";
  const std::string header_text = bytes.substr(8, header_size);
  const size_t json_end = header_text.rfind('}') + 1;
  EXPECT_EQ(header_text.find_first_not_of(' ', json_end), std::string::npos) << "padding is spaces only";
  EXPECT_LT(header_text.size() - json_end, 8u);
  // Names appear sorted in the header text.
  EXPECT_LT(header_text.find("\"a\""), header_text.find("\"b\""));
  EXPECT_LT(header_text.find("\"b\""), header_text.find("\"c\""));
  EXPECT_EQ(header_text.find("__metadata__"), std::string::npos);

  const json header = json::parse(header_text);
  uint64_t covered = 0;
  for (const auto& t : owned) {
    const auto offsets = header[t.name]["data_offsets"].get<std::vector<uint64_t>>();
    EXPECT_EQ(header[t.name]["dtype"], std::string(dtype_name(t.dtype)));
    EXPECT_EQ(header[t.name]["shape"].get<Shape>(), t.shape);
    const NamedTensor named = t.named();
    ASSERT_EQ(offsets[1] - offsets[0], named.view.nbytes());
    EXPECT_EQ(offsets[0] % dtype_size(t.dtype), 0u) << t.name << " must be aligned to its element size";
    EXPECT_TRUE(same_bytes(bytes.data() + 8 + header_size + offsets[0], named.view.data, named.view.nbytes()));
    covered += offsets[1] - offsets[0];
  }
  EXPECT_EQ(8 + header_size + covered, bytes.size()) << "no gaps, nothing trailing";
}

TEST(Safetensors, OverwritesAtomicallyAndReportsUnwritablePaths) {
  TempDir dir;
  const OwnedTensor a("a", DType::F32, {4});
  const OwnedTensor b("b", DType::F16, {2});
  const std::string path = dir.file("x.safetensors");
  write_safetensors(path, {a.named()});
  write_safetensors(path, {b.named()});
  const SafetensorsFile file(path);
  EXPECT_EQ(file.tensors().size(), 1u);
  EXPECT_TRUE(file.tensors().count("b"));

  const std::string bad = dir.file("no/such/dir/y.safetensors");
  EXPECT_TRUE(contains_all(error_message([&] { write_safetensors(bad, {a.named()}); }), {bad}));
}

TEST(Safetensors, WriterRefusesWhatTheFormatCannotHold) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  const OwnedTensor a("a", DType::F32, {4});
  EXPECT_TRUE(contains_all(error_message([&] { write_safetensors(path, {a.named(), a.named()}); }), {path, "'a'", "twice"}));
  NamedTensor reserved = a.named();
  reserved.name = "__metadata__";
  EXPECT_TRUE(contains_all(error_message([&] { write_safetensors(path, {reserved}); }), {"__metadata__", "reserved"}));
  NamedTensor negative = a.named();
  negative.view.shape = {-1, 4};
  EXPECT_TRUE(contains_all(error_message([&] { write_safetensors(path, {negative}); }), {"'a'", "negative"}));
  NamedTensor no_data{"n", TensorView{DType::F32, {2}, nullptr}};
  EXPECT_TRUE(contains_all(error_message([&] { write_safetensors(path, {no_data}); }), {"'n'", "no data"}));
  const std::vector<uint8_t> block(dtype_block_bytes(DType::Q8_0));
  NamedTensor quantized{"q", TensorView{DType::Q8_0, {32}, block.data()}};
  EXPECT_TRUE(contains_all(error_message([&] { write_safetensors(path, {quantized}); }), {"'q'", "Q8_0", "GGUF"}));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Safetensors, ReadsFilesFromAnIndependentWriter) {
  const json expected = json::parse(testing::read_bytes(fixture("formats/independent.expected.json")));
  for (const char* name : {"independent.safetensors", "unaligned.safetensors"}) {
    SCOPED_TRACE(name);
    const SafetensorsFile file(fixture(std::string("formats/") + name));
    EXPECT_EQ(file.metadata().at("format"), "pt");
    const json& tensors = expected[name];
    ASSERT_EQ(file.tensors().size(), tensors.size());
    for (const auto& [tensor, info] : tensors.items()) {
      SCOPED_TRACE(tensor);
      ASSERT_TRUE(file.tensors().count(tensor));
      const TensorView& view = file.tensors().at(tensor);
      DType dtype;
      ASSERT_TRUE(parse_dtype(info["dtype"].get<std::string>(), &dtype));
      EXPECT_EQ(view.dtype, dtype);
      EXPECT_EQ(view.shape, info["shape"].get<Shape>());
      EXPECT_TRUE(aligned(view)) << "views must be usable as typed memory even when the file is not aligned";
      expect_values(view, info["values"]);
    }
  }
}

// The HF fixture checkpoints were saved by transformers; the digest was computed from them by
// make_fixtures.py with numpy/torch decoding.
TEST(Safetensors, ReadsTheHfReferenceCheckpoints) {
  const json digests = json::parse(testing::read_bytes(fixture("formats/hf_reference_digest.json")));
  ASSERT_GE(digests.size(), 2u);
  for (const auto& [name, tensors] : digests.items()) {
    SCOPED_TRACE(name);
    const std::string case_dir = fixture("hf-reference/" + name);
    const SafetensorsFile file(case_dir + "/ckpt/model.safetensors");
    EXPECT_EQ(file.metadata().at("format"), "pt");
    ASSERT_EQ(file.tensors().size(), tensors.size());
    for (const auto& [tensor, digest] : tensors.items()) {
      SCOPED_TRACE(tensor);
      ASSERT_TRUE(file.tensors().count(tensor));
      const TensorView& view = file.tensors().at(tensor);
      DType dtype;
      ASSERT_TRUE(parse_dtype(digest["dtype"].get<std::string>(), &dtype));
      EXPECT_EQ(view.dtype, dtype);
      EXPECT_EQ(view.shape, digest["shape"].get<Shape>());
      const std::vector<float> values = decode(view);
      for (size_t i = 0; i < 4 && i < values.size(); ++i) EXPECT_EQ(values[i], digest["first"][i].get<double>());
      EXPECT_EQ(values.back(), digest["last"].get<double>());
      double sum = 0;
      for (float v : values) sum += v;
      // numpy sums pairwise, we sum in order: both in double over <= 2^17 float values.
      EXPECT_NEAR(sum, digest["sum"].get<double>(), 1e-12 * digest["abs_sum"].get<double>() + 1e-30);
    }
    // Every parameter HF differentiated (grads_ce/<name>.npy) is in the checkpoint with its shape.
    const json manifest = json::parse(testing::read_bytes(case_dir + "/manifest.json"));
    size_t params = 0;
    for (const json& grad : manifest["grads"]["files"]) {
      const std::string param = grad["param"].get<std::string>();
      ASSERT_TRUE(file.tensors().count(param)) << param;
      EXPECT_EQ(file.tensors().at(param).shape, grad["shape"].get<Shape>()) << param;
      ++params;
    }
    EXPECT_EQ(params, file.tensors().size());
  }
}

}  // namespace
}  // namespace jetmoe
