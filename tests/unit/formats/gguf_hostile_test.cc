// Malformed and hostile GGUF files, built byte by byte from the spec: each must be refused with a
// jetmoe::Error naming the file, the key or tensor and the problem (and never crash, also under
// ASan), the same standard as safetensors_hostile_test.cc.
#include <gtest/gtest.h>

#include <string>

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

class HostileGguf : public ::testing::Test {
 protected:
  // Writes `bytes` and returns the message of opening them.
  std::string open_error(const std::string& bytes) {
    t::write_bytes(path_, bytes);
    return error_message([&] { GgufFile file(path_); });
  }
  std::string open_error(const GgufBytes& bytes) { return open_error(bytes.bytes()); }

  // A header with one metadata entry whose key and value type the caller writes next.
  static GgufBytes one_entry() { return std::move(GgufBytes().header(0, 1)); }
  // A header with one tensor info and no metadata.
  static GgufBytes one_tensor() { return std::move(GgufBytes().header(1, 0)); }

  TempDir dir_;
  const std::string path_ = dir_.file("hostile.gguf");
};

// --- header -----------------------------------------------------------------------------------

TEST_F(HostileGguf, EmptyOrShortFileIsNotGguf) {
  for (const std::string& bytes : {std::string(), std::string("GG"), std::string("GGU")}) {
    EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "not a GGUF file"}));
  }
}

TEST_F(HostileGguf, WrongMagic) {
  GgufBytes bytes;
  bytes.raw("GGML").u32(3).u64(0).u64(0);
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "not a GGUF file", "'GGML'"}));
  EXPECT_TRUE(contains_all(open_error(std::string("\x89PNG\r\n\x1a\n", 8)), {"not a GGUF file", "\\x89PNG"}));
}

TEST_F(HostileGguf, TruncatedHeader) {
  GgufBytes bytes;
  bytes.raw("GGUF").u32(3).u32(0);
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "truncated", "12 bytes", "24-byte GGUF header"}));
}

TEST_F(HostileGguf, UnsupportedVersions) {
  for (uint32_t version : {1u, 2u, 4u, 0x03000000u}) {
    EXPECT_TRUE(contains_all(open_error(GgufBytes().header(0, 0, version)),
                             {"hostile.gguf", str_cat("version ", version), "not supported"}));
  }
}

TEST_F(HostileGguf, CountsTheFileCannotHold) {
  EXPECT_TRUE(contains_all(open_error(GgufBytes().header(0, uint64_t(1) << 40)),
                           {"hostile.gguf", "1099511627776 metadata entries", "more than the file can hold"}));
  EXPECT_TRUE(contains_all(open_error(GgufBytes().header(~uint64_t(0), 0)),
                           {"hostile.gguf", "18446744073709551615 tensors", "more than the file can hold"}));
  // Plausible counts, but far more than the bytes that follow could describe.
  GgufBytes bytes = GgufBytes().header(0, 3);
  bytes.kv_u32("a.b", 1);
  EXPECT_TRUE(contains_all(open_error(bytes), {"3 metadata entries", "more than the file can hold"}));
}

// --- metadata ---------------------------------------------------------------------------------

TEST_F(HostileGguf, KeyLengthOverTheSpecLimit) {
  GgufBytes bytes = one_entry();
  bytes.u64(70000).raw(std::string(70000, 'k')).u32(t::kU32).u32(1);
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "metadata entry #0", "key length 70000", "limit of 65535"}));
}

TEST_F(HostileGguf, KeyRunningPastTheEnd) {
  GgufBytes bytes = one_entry();
  bytes.u64(1000).raw("general.name");
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "key of 1000 bytes", "runs past the end of the file"}));
}

TEST_F(HostileGguf, EmptyAndUnprintableKeys) {
  GgufBytes empty = one_entry();
  empty.key("", t::kU32).u32(1);
  EXPECT_TRUE(contains_all(open_error(empty), {"hostile.gguf", "empty key"}));
  GgufBytes control = one_entry();
  control.key(std::string("general.\nname", 13), t::kU32).u32(1);
  EXPECT_TRUE(contains_all(open_error(control), {"hostile.gguf", "general.\\x0aname", "not printable ASCII"}));
}

TEST_F(HostileGguf, DuplicateKey) {
  GgufBytes bytes = GgufBytes().header(0, 2);
  bytes.kv_str("general.name", "a").kv_str("general.name", "b");
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "metadata 'general.name'", "appears twice"}));
}

TEST_F(HostileGguf, UnknownValueType) {
  GgufBytes bytes = one_entry();
  bytes.key("general.x", 13).u32(0);
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "metadata 'general.x'", "unknown value type 13"}));
}

TEST_F(HostileGguf, StringValueTooLongOrPastTheEnd) {
  GgufBytes huge = one_entry();
  huge.key("general.name", t::kString).u64(uint64_t(1) << 62);
  EXPECT_TRUE(contains_all(open_error(huge), {"hostile.gguf", "metadata 'general.name'", "string length 4611686018427387904",
                                              "over the limit"}));
  GgufBytes past = one_entry();
  past.key("general.name", t::kString).u64(100).raw("short");
  EXPECT_TRUE(contains_all(open_error(past), {"metadata 'general.name'", "string of 100 bytes", "runs past the end"}));
}

TEST_F(HostileGguf, TruncatedScalarValue) {
  GgufBytes bytes = one_entry();
  bytes.key("general.alignment", t::kU64).u32(32);
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "metadata 'general.alignment'", "truncated", "8 bytes needed"}));
}

TEST_F(HostileGguf, BoolThatIsNeitherZeroNorOne) {
  GgufBytes scalar = one_entry();
  scalar.key("jetmoe.tie_word_embeddings", t::kBool).u8(2);
  EXPECT_TRUE(contains_all(open_error(scalar), {"metadata 'jetmoe.tie_word_embeddings'", "bool value 2", "0 or 1"}));
  GgufBytes array = one_entry();
  array.key("general.flags", t::kArray).u32(t::kBool).u64(3).u8(1).u8(0).u8(7);
  EXPECT_TRUE(contains_all(open_error(array), {"metadata 'general.flags'", "element 2", "is 7"}));
}

TEST_F(HostileGguf, ArrayCountsTheFileCannotHold) {
  GgufBytes numbers = one_entry();
  numbers.key("tokenizer.ggml.scores", t::kArray).u32(t::kF32).u64(uint64_t(1) << 60).u32(0);
  EXPECT_TRUE(contains_all(open_error(numbers), {"hostile.gguf", "metadata 'tokenizer.ggml.scores'",
                                                 "array of 1152921504606846976 float32 values", "cannot fit"}));
  GgufBytes strings = one_entry();
  strings.key("tokenizer.ggml.tokens", t::kArray).u32(t::kString).u64(1000).str("a").str("b");
  EXPECT_TRUE(contains_all(open_error(strings), {"metadata 'tokenizer.ggml.tokens'", "array of 1000 string values", "cannot fit"}));
}

TEST_F(HostileGguf, StringInsideAnArrayTooLong) {
  GgufBytes bytes = one_entry();
  bytes.key("tokenizer.ggml.tokens", t::kArray).u32(t::kString).u64(2).str("ok").u64(uint64_t(1) << 40);
  EXPECT_TRUE(contains_all(open_error(bytes), {"metadata 'tokenizer.ggml.tokens'", "string length 1099511627776", "limit"}));
}

TEST_F(HostileGguf, ArraysNestedTooDeep) {
  GgufBytes bytes = one_entry();
  bytes.key("general.nested", t::kArray);
  for (int depth = 0; depth < 5; ++depth) bytes.u32(t::kArray).u64(1);
  bytes.u32(t::kU8).u64(0);
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "metadata 'general.nested'", "nested more than 4 deep"}));
}

TEST_F(HostileGguf, UnknownArrayElementType) {
  GgufBytes bytes = one_entry();
  bytes.key("general.list", t::kArray).u32(77).u64(1).u32(0);
  EXPECT_TRUE(contains_all(open_error(bytes), {"metadata 'general.list'", "unknown array element type 77"}));
}

TEST_F(HostileGguf, AlignmentOfTheWrongTypeOrValue) {
  GgufBytes typed = one_entry();
  typed.key("general.alignment", t::kU64).u64(32);
  EXPECT_TRUE(contains_all(open_error(typed), {"hostile.gguf", "'general.alignment' must be a uint32", "got uint64"}));
  for (uint32_t alignment : {0u, 4u, 24u, uint32_t(1) << 30}) {
    GgufBytes bytes = one_entry();
    bytes.kv_u32("general.alignment", alignment);
    EXPECT_TRUE(contains_all(open_error(bytes), {"'general.alignment' is " + std::to_string(alignment), "power of two"}));
  }
}

// --- tensor infos -----------------------------------------------------------------------------

TEST_F(HostileGguf, EmptyOrOverlongTensorName) {
  GgufBytes empty = one_tensor();
  empty.tensor("", {32}, t::kGgmlF32, 0);
  EXPECT_TRUE(contains_all(open_error(empty), {"hostile.gguf", "tensor #0", "empty tensor name"}));
  GgufBytes overlong = one_tensor();
  overlong.tensor(std::string(64, 'w'), {32}, t::kGgmlF32, 0);
  EXPECT_TRUE(contains_all(open_error(overlong), {"tensor #0", "name length 64", "limit of 63"}));
  GgufBytes control = one_tensor();
  control.tensor(std::string("a\0b", 3), {32}, t::kGgmlF32, 0);
  EXPECT_TRUE(contains_all(open_error(control), {"tensor 'a\\x00b'", "control characters"}));
}

TEST_F(HostileGguf, DuplicateTensorName) {
  GgufBytes bytes = GgufBytes().header(2, 0);
  bytes.tensor("w", {8}, t::kGgmlF32, 0).tensor("w", {8}, t::kGgmlF32, 32).pad_to(32).raw(std::string(64, '\0'));
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "tensor 'w'", "appears twice"}));
}

TEST_F(HostileGguf, DimensionCounts) {
  for (uint32_t n_dims : {0u, 5u, 1000u}) {
    GgufBytes bytes = one_tensor();
    bytes.str("w").u32(n_dims).u64(1).u64(1).u64(1).u64(1).u64(1).u32(t::kGgmlF32).u64(0);
    EXPECT_TRUE(contains_all(open_error(bytes), {"tensor 'w'", str_cat("has ", n_dims, " dimensions"), "1 to 4"}));
  }
}

TEST_F(HostileGguf, DimensionsAndSizesThatOverflow) {
  GgufBytes negative = one_tensor();
  negative.tensor("w", {~uint64_t(0)}, t::kGgmlF32, 0);  // -1 as int64
  EXPECT_TRUE(contains_all(open_error(negative), {"tensor 'w'", "dimension 18446744073709551615 is too large"}));
  GgufBytes elements = one_tensor();
  elements.tensor("w", {uint64_t(1) << 32, uint64_t(1) << 32}, t::kGgmlF32, 0);
  EXPECT_TRUE(contains_all(open_error(elements), {"tensor 'w'", "[4294967296, 4294967296]", "more elements than fit"}));
  GgufBytes bytes = one_tensor();
  bytes.tensor("w", {uint64_t(1) << 31, uint64_t(1) << 31}, t::kGgmlF32, 0);  // 2^62 floats = 2^64 bytes
  EXPECT_TRUE(contains_all(open_error(bytes), {"tensor 'w'", "more bytes than fit in 64 bits"}));
  // A zero dimension does not excuse an overflowing product of the others.
  GgufBytes zero = one_tensor();
  zero.tensor("w", {0, uint64_t(1) << 40, uint64_t(1) << 40}, t::kGgmlF32, 0);
  EXPECT_TRUE(contains_all(open_error(zero), {"tensor 'w'", "more elements than fit"}));
}

TEST_F(HostileGguf, TensorTypesJetmoeDoesNotRead) {
  GgufBytes k_quant = one_tensor();
  k_quant.tensor("blk.0.ffn_down_exps.weight", {256}, t::kGgmlQ3_K, 0);
  EXPECT_TRUE(contains_all(open_error(k_quant), {"hostile.gguf", "tensor 'blk.0.ffn_down_exps.weight'", "ggml type 11 (Q3_K)",
                                                 "does not read", "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K"}));
  GgufBytes unknown = one_tensor();
  unknown.tensor("w", {32}, 99, 0);
  EXPECT_TRUE(contains_all(open_error(unknown), {"tensor 'w'", "ggml type 99 (unknown)"}));
}

TEST_F(HostileGguf, QuantizedRowsNotAMultipleOfTheBlock) {
  GgufBytes q8 = one_tensor();
  q8.tensor("w", {31, 2}, t::kGgmlQ8_0, 0);
  EXPECT_TRUE(contains_all(open_error(q8), {"tensor 'w'", "rows of 31 values", "Q8_0 block (32)"}));
  GgufBytes q4 = one_tensor();
  q4.tensor("w", {48}, t::kGgmlQ4_0, 0);
  EXPECT_TRUE(contains_all(open_error(q4), {"tensor 'w'", "rows of 48 values", "Q4_0 block (32)"}));
  GgufBytes k_quant = one_tensor();  // whole blocks of 32, not a 256-value super-block
  k_quant.tensor("w", {288, 2}, t::kGgmlQ4_K, 0);
  EXPECT_TRUE(contains_all(open_error(k_quant), {"tensor 'w'", "rows of 288 values", "Q4_K block (256)"}));
}

TEST_F(HostileGguf, MisalignedOffset) {
  GgufBytes bytes = one_tensor();
  bytes.tensor("w", {8}, t::kGgmlF32, 4).pad_to(32).raw(std::string(64, '\0'));
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "tensor 'w'", "offset 4", "alignment (32)"}));
  // The alignment the file declares is the one that counts.
  GgufBytes declared = GgufBytes().header(1, 1);
  declared.kv_u32("general.alignment", 64).tensor("w", {8}, t::kGgmlF32, 32).pad_to(64).raw(std::string(128, '\0'));
  EXPECT_TRUE(contains_all(open_error(declared), {"tensor 'w'", "offset 32", "alignment (64)"}));
}

TEST_F(HostileGguf, TensorDataPastTheEnd) {
  GgufBytes bytes = one_tensor();
  bytes.tensor("w", {64}, t::kGgmlF32, 0).pad_to(32).raw(std::string(100, '\0'));
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "tensor 'w'", "256 bytes at offset 0", "runs past the end",
                                               "data section has 100 bytes"}));
  GgufBytes far = one_tensor();
  far.tensor("w", {8}, t::kGgmlF32, uint64_t(1) << 62).pad_to(32).raw(std::string(32, '\0'));
  EXPECT_TRUE(contains_all(open_error(far), {"tensor 'w'", "offset 4611686018427387904", "runs past the end"}));
}

TEST_F(HostileGguf, OverlappingTensors) {
  GgufBytes bytes = GgufBytes().header(2, 0);
  bytes.tensor("a", {64}, t::kGgmlF32, 0).tensor("b", {64}, t::kGgmlF32, 128).pad_to(32).raw(std::string(512, '\0'));
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "'a' (bytes 0..256)", "'b' (bytes 128..384)", "overlap"}));
}

TEST_F(HostileGguf, MissingDataSection) {
  GgufBytes bytes = one_tensor();
  bytes.tensor("w", {8}, t::kGgmlF32, 0);  // the file ends with the tensor infos, before the padding
  EXPECT_TRUE(contains_all(open_error(bytes), {"hostile.gguf", "truncated", "data section starts at byte 64"}));
}

// Every prefix of a valid file is refused with an Error naming the file: no read past the end, ever.
TEST_F(HostileGguf, EveryTruncationIsRefused) {
  GgufBytes bytes = GgufBytes().header(2, 4);
  bytes.kv_str("general.architecture", "jetmoe").kv_u32("general.alignment", 32);
  bytes.key("tokenizer.ggml.tokens", t::kArray).u32(t::kString).u64(2).str("<s>").str("</s>");
  bytes.key("general.nested", t::kArray).u32(t::kArray).u64(1).u32(t::kI32).u64(2).u32(7).u32(9);
  bytes.tensor("a", {32, 2}, t::kGgmlQ8_0, 0).tensor("b", {3}, t::kGgmlF32, 96).pad_to(32).raw(std::string(108, '\1'));
  t::write_bytes(path_, bytes.bytes());
  { GgufFile whole(path_); }  // the untruncated file is valid
  for (size_t size = 0; size < bytes.size(); ++size) {
    const std::string message = open_error(bytes.bytes().substr(0, size));
    EXPECT_TRUE(contains_all(message, {"hostile.gguf"})) << "cut at " << size << ": " << message;
    EXPECT_NE(message, "<no error>") << "cut at " << size;
  }
}

}  // namespace
}  // namespace jetmoe
