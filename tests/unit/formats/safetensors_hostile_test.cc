// Malformed and hostile safetensors files, built byte by byte: each must be refused with a
// jetmoe::Error naming the file, the tensor and the problem (and never crash, also under ASan).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "format_test_util.h"
#include "formats/safetensors.h"

namespace jetmoe {
namespace {

using testing::contains_all;
using testing::error_message;
using testing::TempDir;

std::string le64(uint64_t value) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &value, 8);
  return out;
}

class HostileSafetensors : public ::testing::Test {
 protected:
  // A file with `header` as its JSON header and `data_size` zero bytes of data.
  std::string write(const std::string& header, size_t data_size) {
    return write_raw(le64(header.size()) + header + std::string(data_size, '\0'));
  }
  std::string write_raw(const std::string& bytes) {
    testing::write_bytes(path_, bytes);
    return path_;
  }
  // Opens `header` + data and returns the error message.
  std::string open_error(const std::string& header, size_t data_size) {
    write(header, data_size);
    return error_message([&] { SafetensorsFile file(path_); });
  }

  TempDir dir_;
  const std::string path_ = dir_.file("hostile.safetensors");
};

TEST_F(HostileSafetensors, FileTooShortForTheHeaderLength) {
  for (size_t size : {0, 1, 7}) {
    write_raw(std::string(size, 'x'));
    EXPECT_TRUE(contains_all(error_message([&] { SafetensorsFile f(path_); }), {"hostile.safetensors", "too short"}));
  }
}

TEST_F(HostileSafetensors, HeaderLengthPastTheEndOfTheFile) {
  write_raw(le64(1000) + "{}");
  EXPECT_TRUE(contains_all(error_message([&] { SafetensorsFile f(path_); }),
                           {"hostile.safetensors", "header length 1000", "past the end", "10 bytes"}));
}

TEST_F(HostileSafetensors, AbsurdHeaderLength) {
  write_raw(le64(uint64_t(1) << 62) + "{}");
  EXPECT_TRUE(contains_all(error_message([&] { SafetensorsFile f(path_); }), {"hostile.safetensors", "limit"}));
  write_raw(le64(~uint64_t(0)) + "{}");  // would wrap 8 + length
  EXPECT_TRUE(contains_all(error_message([&] { SafetensorsFile f(path_); }), {"limit"}));
}

TEST_F(HostileSafetensors, HeaderIsNotJson) {
  EXPECT_TRUE(contains_all(open_error("{\"a\": {\"dtype\": ", 0), {"hostile.safetensors", "header", "not valid JSON"}));
  EXPECT_TRUE(contains_all(open_error("not json at all", 0), {"not valid JSON"}));
  // NUL padding (nlohmann alone would stop reading at the first NUL and accept this).
  EXPECT_TRUE(contains_all(open_error(std::string("{}\0\0\0\0\0\0", 8), 0), {"not valid JSON", "NUL"}));
  EXPECT_TRUE(contains_all(open_error(std::string("{}\0{\"a\": 1}", 11), 0), {"not valid JSON", "NUL"}));
  EXPECT_TRUE(contains_all(open_error("{\"\xff\xfe\": 1}", 0), {"not valid JSON"}));               // bad UTF-8
}

TEST_F(HostileSafetensors, HeaderIsNotAnObject) {
  EXPECT_TRUE(contains_all(open_error("[1, 2]", 0), {"hostile.safetensors", "must be a JSON object", "array"}));
  EXPECT_TRUE(contains_all(open_error("42", 0), {"must be a JSON object"}));
  // Deep nesting must not exhaust the stack.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_TRUE(contains_all(open_error(deep, 0), {"must be a JSON object"}));
}

TEST_F(HostileSafetensors, EntryIsNotAnObject) {
  EXPECT_TRUE(contains_all(open_error(R"({"a.weight": [1, 2]})", 0), {"hostile.safetensors", "'a.weight'", "object"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a.weight": "F32"})", 0), {"'a.weight'", "object"}));
}

TEST_F(HostileSafetensors, MissingFields) {
  EXPECT_TRUE(contains_all(open_error(R"({"a.weight": {"shape": [2], "data_offsets": [0, 8]}})", 8),
                           {"hostile.safetensors", "'a.weight'", "'dtype'"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a.weight": {"dtype": "F32", "data_offsets": [0, 8]}})", 8),
                           {"'a.weight'", "'shape'"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a.weight": {"dtype": "F32", "shape": [2]}})", 8),
                           {"'a.weight'", "'data_offsets'"}));
}

TEST_F(HostileSafetensors, WrongFieldTypes) {
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": 32, "shape": [2], "data_offsets": [0, 8]}})", 8),
                           {"'a'", "dtype must be a string", "integer"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", 8),
                           {"'a'", "shape must be an array"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})", 8),
                           {"'a'", "shape must hold integers", "string"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", 8),
                           {"'a'", "shape must hold integers", "floating-point"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": "0-8"}})", 8),
                           {"'a'", "data_offsets must be an array"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4, 8]}})", 8),
                           {"'a'", "data_offsets must be an array [begin, end]"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8.0]}})", 8),
                           {"'a'", "data_offsets must hold integers"}));
}

TEST_F(HostileSafetensors, UnsupportedDtypeIsNamed) {
  for (const char* dtype : {"I64", "F64", "U8", "f32", "BOOL", "F8_E4M3"}) {
    const std::string header =
        std::string(R"({"ids": {"dtype": ")") + dtype + R"(", "shape": [1], "data_offsets": [0, 8]}})";
    EXPECT_TRUE(contains_all(open_error(header, 8), {"hostile.safetensors", "'ids'", std::string("'") + dtype + "'"}));
  }
}

TEST_F(HostileSafetensors, NegativeDimension) {
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [-2, 3], "data_offsets": [0, 24]}})", 24),
                           {"'a'", "negative", "-2"}));
}

TEST_F(HostileSafetensors, ShapeWhoseSizeOverflows) {
  // 2^33 * 2^33 elements: the element count alone overflows 64 bits.
  EXPECT_TRUE(contains_all(
      open_error(R"({"a": {"dtype": "F32", "shape": [8589934592, 8589934592], "data_offsets": [0, 0]}})", 0),
      {"'a'", "64 bits"}));
  // 2^62 elements of 4 bytes: the byte count overflows.
  EXPECT_TRUE(contains_all(
      open_error(R"({"a": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", 0),
      {"'a'", "64 bits"}));
  // A product that wraps to exactly the declared size must not slip through.
  EXPECT_TRUE(contains_all(
      open_error(R"({"a": {"dtype": "BF16", "shape": [9223372036854775808, 2, 2], "data_offsets": [0, 0]}})", 0),
      {"'a'", "too large"}));
  EXPECT_TRUE(contains_all(
      open_error(R"({"a": {"dtype": "BF16", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}})", 0),
      {"'a'", "64 bits"}));
  // A zero dimension does not excuse the others: no running product may overflow.
  EXPECT_TRUE(contains_all(
      open_error(R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 4, 0], "data_offsets": [0, 0]}})", 0),
      {"'a'", "64 bits"}));
  write(R"({"a": {"dtype": "F32", "shape": [0, 1099511627776], "data_offsets": [0, 0]}})", 0);
  EXPECT_EQ(SafetensorsFile(path_).tensors().at("a").numel(), 0);
}

TEST_F(HostileSafetensors, BeginAfterEnd) {
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8),
                           {"'a'", "[8, 4]", "after the end"}));
}

TEST_F(HostileSafetensors, RangeOutsideTheDataSection) {
  EXPECT_TRUE(contains_all(open_error(R"({"a.weight": {"dtype": "F32", "shape": [228], "data_offsets": [0, 912]}})", 800),
                           {"hostile.safetensors: tensor 'a.weight' ends at byte 912 but the data section has 800 bytes"}));
  EXPECT_TRUE(contains_all(
      open_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551612, 18446744073709551615]}})", 8),
      {"'a'", "ends at byte 18446744073709551615"}));
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 8),
                           {"'a'", "negative"}));
}

TEST_F(HostileSafetensors, ByteRangeDisagreesWithTheShape) {
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 24]}})", 24),
                           {"'a'", "24 bytes", "[2, 3]", "BF16", "needs 12"}));
}

TEST_F(HostileSafetensors, OverlappingTensors) {
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                          "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                                      24),
                           {"hostile.safetensors", "'a'", "'b'", "overlap"}));
  // The same bytes twice.
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                          "b": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}})",
                                      8),
                           {"overlap"}));
  // Tensors nested inside another one.
  EXPECT_TRUE(contains_all(open_error(R"({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]},
                                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                                          "c": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}})",
                                      32),
                           {"'a'", "overlap"}));
  // Empty tensors share an offset with others without overlapping.
  write(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
        16);
  EXPECT_EQ(SafetensorsFile(path_).tensors().size(), 3u);
}

TEST_F(HostileSafetensors, DuplicateTensorNames) {
  EXPECT_TRUE(contains_all(open_error(R"({"a.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                          "a.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                      8),
                           {"hostile.safetensors", "'a.weight' twice"}));
  EXPECT_TRUE(contains_all(
      open_error(R"({"a": {"dtype": "F32", "dtype": "BF16", "shape": [1], "data_offsets": [0, 4]}})", 4),
      {"'dtype' twice", "'a'"}));
}

TEST_F(HostileSafetensors, MetadataMustMapStringsToStrings) {
  EXPECT_TRUE(contains_all(open_error(R"({"__metadata__": {"format": "pt", "step": 5}})", 0),
                           {"hostile.safetensors", "__metadata__", "'step'", "string", "integer"}));
  EXPECT_TRUE(contains_all(open_error(R"({"__metadata__": ["pt"]})", 0), {"__metadata__", "object"}));
  EXPECT_TRUE(contains_all(open_error(R"({"__metadata__": {"nested": {"a": "b"}}})", 0), {"'nested'", "object"}));
}

TEST_F(HostileSafetensors, AcceptsMinimalValidFiles) {
  write("{}", 0);
  EXPECT_TRUE(SafetensorsFile(path_).tensors().empty());
  write(R"({"__metadata__": {}, "s": {"dtype": "F16", "shape": [], "data_offsets": [0, 2]}})", 2);
  const SafetensorsFile file(path_);
  EXPECT_EQ(file.tensors().at("s").shape, Shape{});
  EXPECT_EQ(file.tensors().at("s").numel(), 1);
  // Trailing bytes that no tensor claims are tolerated (the format does not forbid holes).
  write(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 12);
  EXPECT_EQ(SafetensorsFile(path_).tensors().size(), 1u);
}

TEST_F(HostileSafetensors, MissingFileIsNamed) {
  EXPECT_TRUE(contains_all(error_message([&] { SafetensorsFile f(dir_.file("absent.safetensors")); }),
                           {"absent.safetensors"}));
  EXPECT_TRUE(contains_all(error_message([&] { SafetensorsFile f(dir_.path()); }), {dir_.path()}));
}

}  // namespace
}  // namespace jetmoe
