// .npy files: our writer must produce the bytes np.save produces (fixtures written by numpy,
// see make_fixtures.py), and the reader must decode numpy's files, including the HF fixtures.
#include "formats/npy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "format_test_util.h"

namespace jetmoe {
namespace {

using nlohmann::json;
using testing::contains_all;
using testing::error_message;
using testing::fixture;
using testing::TempDir;

// Writes `values` with our writer and compares with the file numpy saved for the same array.
void expect_same_bytes_as_numpy(const std::string& numpy_file, const std::vector<float>& values, const Shape& shape) {
  SCOPED_TRACE(numpy_file);
  TempDir dir;
  const std::string ours = dir.file("ours.npy");
  write_npy_f32(ours, values.data(), shape);
  const std::string expected = testing::read_bytes(fixture("formats/" + numpy_file));
  const std::string got = testing::read_bytes(ours);
  EXPECT_EQ(got, expected);
}

TEST(Npy, WriterMatchesNumpyByteForByte) {
  // The arrays of make_fixtures.py, restated.
  std::vector<float> grid(6);
  for (int i = 0; i < 6; ++i) grid[size_t(i)] = float(i) * 0.5f - 1.0f;
  expect_same_bytes_as_numpy("numpy_f32_2x3.npy", grid, {2, 3});
  expect_same_bytes_as_numpy("numpy_f32_1d.npy", {0.25f, -1.0f, 3.0e38f, 1e-45f, 7.0f}, {5});
  expect_same_bytes_as_numpy("numpy_f32_scalar.npy", {3.25f}, {});
  expect_same_bytes_as_numpy("numpy_f32_1000x0.npy", {}, {1000, 0});
  expect_same_bytes_as_numpy("numpy_f32_15d.npy", grid, {2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3});
}

TEST(Npy, HeaderIsPaddedToSixtyFourBytes) {
  TempDir dir;
  for (const Shape& shape : {Shape{}, Shape{1}, Shape{7, 3}, Shape{123456789, 0, 2}, Shape{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}}) {
    const std::string path = dir.file("h.npy");
    std::vector<float> data(size_t(shape_numel(shape)), 1.0f);
    write_npy_f32(path, data.data(), shape);
    const std::string bytes = testing::read_bytes(path);
    const size_t header_end = 10 + size_t(uint8_t(bytes[8])) + 256 * size_t(uint8_t(bytes[9]));
    EXPECT_EQ(header_end % 64, 0u) << shape_str(shape);
    EXPECT_EQ(bytes[header_end - 1], '\n');
    EXPECT_EQ(bytes.size(), header_end + data.size() * 4);
    EXPECT_EQ(read_npy(path).shape, shape);
  }
}

TEST(Npy, RoundTrip) {
  TempDir dir;
  const std::string path = dir.file("r.npy");
  std::vector<float> values = {1.0f, -0.0f, std::numeric_limits<float>::infinity(), 1e-40f, -3.5f, 65504.0f};
  write_npy_f32(path, values.data(), {3, 2});
  const NpyArray array = read_npy(path);
  EXPECT_EQ(array.shape, (Shape{3, 2}));
  ASSERT_EQ(array.values.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(array.values[i], double(values[i]));
  EXPECT_TRUE(std::signbit(array.values[1]));
}

TEST(Npy, ReadsEverySupportedNumpyDtype) {
  NpyArray f64 = read_npy(fixture("formats/numpy_f64.npy"));
  EXPECT_EQ(f64.shape, (Shape{3, 2}));
  EXPECT_EQ(f64.values, (std::vector<double>{0.1, -2.5e300, 5e-324, 1.0 / 3.0, -0.0, 1e308}));

  NpyArray i8 = read_npy(fixture("formats/numpy_i8.npy"));
  EXPECT_EQ(i8.shape, (Shape{2, 3}));
  EXPECT_EQ(i8.values, (std::vector<double>{-9007199254740992.0, -1, 0, 1, 32000, 9007199254740992.0}));

  NpyArray i4 = read_npy(fixture("formats/numpy_i4.npy"));
  EXPECT_EQ(i4.shape, (Shape{4}));
  EXPECT_EQ(i4.values, (std::vector<double>{-2147483648.0, 2147483647.0, 0, 7}));

  NpyArray f32 = read_npy(fixture("formats/numpy_f32_1d.npy"));
  EXPECT_EQ(f32.values, (std::vector<double>{0.25, -1.0, double(3.0e38f), double(1e-45f), 7.0}));

  NpyArray scalar = read_npy(fixture("formats/numpy_f32_scalar.npy"));
  EXPECT_EQ(scalar.shape, Shape{});
  EXPECT_EQ(scalar.values, std::vector<double>{3.25});

  NpyArray v2 = read_npy(fixture("formats/numpy_f32_v2.npy"));  // format version 2.0
  EXPECT_EQ(v2.values, (std::vector<double>{1.5, 2.5}));
}

TEST(Npy, RefusesWhatItCannotRepresent) {
  EXPECT_TRUE(contains_all(error_message([] { read_npy(fixture("formats/numpy_fortran.npy")); }),
                           {"numpy_fortran.npy", "Fortran"}));
  EXPECT_TRUE(contains_all(error_message([] { read_npy(fixture("formats/numpy_big_endian.npy")); }),
                           {"numpy_big_endian.npy", "'>f4'"}));
  EXPECT_TRUE(contains_all(error_message([] { read_npy(fixture("formats/numpy_u8.npy")); }),
                           {"numpy_u8.npy", "'|u1'"}));
  EXPECT_TRUE(contains_all(error_message([] { read_npy(fixture("formats/numpy_i8_inexact.npy")); }),
                           {"numpy_i8_inexact.npy", "9007199254740993", "exactly"}));
}

TEST(Npy, RefusesDamagedFiles) {
  TempDir dir;
  const std::string good = testing::read_bytes(fixture("formats/numpy_f64.npy"));
  const std::string path = dir.file("bad.npy");
  auto error_for = [&](const std::string& bytes) {
    testing::write_bytes(path, bytes);
    return error_message([&] { read_npy(path); });
  };
  EXPECT_TRUE(contains_all(error_for(good.substr(0, good.size() - 3)), {"bad.npy", "truncated", "needs 48 bytes"}));
  EXPECT_TRUE(contains_all(error_for(good + "xx"), {"bad.npy", "2 unexpected bytes"}));
  EXPECT_TRUE(contains_all(error_for(""), {"bad.npy", "not a .npy file"}));
  EXPECT_TRUE(contains_all(error_for("PK\x03\x04 this is a zip"), {"not a .npy file"}));
  EXPECT_TRUE(contains_all(error_for(good.substr(0, 40)), {"bad.npy", "past the end"}));
  std::string version9 = good;
  version9[6] = 9;
  EXPECT_TRUE(contains_all(error_for(version9), {"version 9"}));

  // Headers rewritten in place (same length, so the data still lines up).
  auto with_header = [&](std::string header) {
    std::string bytes = good;
    const size_t length = size_t(uint8_t(bytes[8])) + 256 * size_t(uint8_t(bytes[9]));
    header.resize(length - 1, ' ');
    bytes.replace(10, length, header + "\n");
    return error_for(bytes);
  };
  EXPECT_TRUE(contains_all(with_header("{'descr': '<f8', 'shape': (3, 2), }"), {"bad.npy", "'fortran_order'"}));
  EXPECT_TRUE(contains_all(with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, -2), }"), {"shape"}));
  EXPECT_TRUE(contains_all(with_header("{'descr': '<f8', 'fortran_order': Maybe, 'shape': (6,), }"), {"True or False"}));
  EXPECT_TRUE(contains_all(with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (6,), 'x': 1}"), {"'x'"}));
  EXPECT_TRUE(contains_all(with_header("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (6,)}"),
                           {"'descr' appears twice"}));
  EXPECT_TRUE(contains_all(with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,)}"),
                           {"too large"}));
  EXPECT_TRUE(contains_all(with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}"),
                           {"too large"}));
  EXPECT_TRUE(contains_all(with_header("['descr']"), {"malformed"}));
  // Six elements as one dimension read the same data.
  testing::write_bytes(path, good);
  EXPECT_EQ(read_npy(path).values.size(), 6u);
}

TEST(Npy, WriterRefusesBadInput) {
  TempDir dir;
  const float x = 1.0f;
  EXPECT_TRUE(contains_all(error_message([&] { write_npy_f32(dir.file("a.npy"), &x, {-1}); }), {"a.npy", "negative"}));
  EXPECT_TRUE(contains_all(error_message([&] { write_npy_f32(dir.file("a.npy"), nullptr, {2}); }), {"no data"}));
  EXPECT_TRUE(contains_all(error_message([&] { write_npy_f32(dir.file("no/dir/a.npy"), &x, {1}); }), {"no/dir/a.npy"}));
}

TEST(Npy, ReadsTheHfReferenceFixtures) {
  const std::string dir = fixture("hf-reference/c1_base_f32/");
  const NpyArray logits = read_npy(dir + "logits.npy");
  EXPECT_EQ(logits.shape, (Shape{2, 12, 512}));
  double magnitude = 0;
  for (double v : logits.values) {
    ASSERT_TRUE(std::isfinite(v));
    ASSERT_EQ(v, double(float(v))) << "float32 data widened exactly";
    magnitude = std::max(magnitude, std::abs(v));
  }
  EXPECT_GT(magnitude, 0.0);

  // input_ids.npy (int64) holds the ids of inputs.json.
  const NpyArray ids = read_npy(dir + "input_ids.npy");
  const json inputs = json::parse(testing::read_bytes(dir + "inputs.json"))["input_ids"];
  ASSERT_EQ(ids.shape, (Shape{int64_t(inputs.size()), int64_t(inputs[0].size())}));
  for (size_t b = 0; b < inputs.size(); ++b) {
    for (size_t t = 0; t < inputs[b].size(); ++t) {
      EXPECT_EQ(ids.values[b * inputs[b].size() + t], inputs[b][t].get<double>());
    }
  }

  // loss.npy (float64) holds the scalars of manifest.json.
  const NpyArray loss = read_npy(dir + "loss.npy");
  const json scalars = json::parse(testing::read_bytes(dir + "manifest.json"))["scalars"];
  ASSERT_EQ(loss.shape, Shape{3});
  EXPECT_EQ(loss.values[0], scalars["ce_loss"].get<double>());
  EXPECT_EQ(loss.values[1], scalars["aux_loss"].get<double>());
  EXPECT_EQ(loss.values[2], scalars["total_loss"].get<double>());
}

}  // namespace
}  // namespace jetmoe
