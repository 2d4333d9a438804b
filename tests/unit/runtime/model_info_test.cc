// What `jetmoe info` reads of a GGUF file's general.file_type: llama.cpp's name for a number
// jetmoe writes, the bare number for any other, nothing for a key that is absent or not an
// integer (a hostile file is described, never refused for it); and the bits per weight.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <string_view>
#include <vector>

#include "../formats/format_test_util.h"
#include "formats/gguf.h"
#include "formats/gguf_file_type.h"
#include "formats/gguf_jetmoe.h"
#include "runtime/model_info.h"

namespace jetmoe {
namespace {

using testing::TempDir;

JetMoeConfig tiny_config() {
  JetMoeConfig c;
  c.vocab_size = 32;
  c.hidden_size = 32;
  c.num_layers = 1;
  c.num_experts = 2;
  c.top_k = 1;
  c.num_kv_heads = 1;
  c.head_dim = 16;
  c.intermediate_size = 32;
  c.max_position_embeddings = 16;
  c.tie_word_embeddings = true;
  return c;
}

// The GGUF key/value general.file_type as stored: key length (u64), key, value type (u32), value.
constexpr std::string_view kKey = "general.file_type";

// A GGUF file with the config's metadata (general.file_type a uint32 of `file_type`) and the
// embedding as its one tensor (info reads headers and binds nothing); `patch` may then edit the
// 4-byte value type and value of that key, or its name, in place.
std::string write_file(const TempDir& dir, GgufFileType file_type,
                       const std::function<void(std::string& bytes, size_t key_at)>& patch = nullptr) {
  GgufWriter writer;
  add_jetmoe_metadata(writer, tiny_config(), "x", file_type);
  static const std::vector<float> zeros(32 * 32, 0.0f);
  writer.add_tensor("token_embd.weight", TensorView{DType::F32, {32, 32}, zeros.data()});
  const std::string path = dir.file("m.gguf");
  writer.write(path);
  if (patch) {
    std::string bytes = testing::read_bytes(path);
    const size_t key_at = bytes.find(kKey);
    EXPECT_NE(key_at, std::string::npos);
    patch(bytes, key_at);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }
  return path;
}

void put_u32(std::string& bytes, size_t at, uint32_t v) { std::memcpy(bytes.data() + at, &v, 4); }

TEST(ModelInfo, NamesTheGgufFileType) {
  TempDir dir;
  EXPECT_EQ(inspect_model(write_file(dir, kQ4KMedium)).file_type, "Q4_K_M");
  EXPECT_EQ(inspect_model(write_file(dir, DType::F32)).file_type, "F32");
  const size_t value = kKey.size() + 4;  // past the key and the value type
  // 3 is Q4_1's number: a file type jetmoe does not write.
  EXPECT_EQ(inspect_model(write_file(dir, DType::F32, [&](std::string& b, size_t at) { put_u32(b, at + value, 3); }))
                .file_type,
            "id 3");
  // An int32 -5; a float32 (type 6) where an integer belongs; the key renamed away.
  EXPECT_EQ(inspect_model(write_file(dir, DType::F32, [&](std::string& b, size_t at) {
              put_u32(b, at + kKey.size(), 5);  // GGUF type int32
              put_u32(b, at + value, uint32_t(-5));
            })).file_type,
            "id -5");
  EXPECT_EQ(inspect_model(write_file(dir, DType::F32, [&](std::string& b, size_t at) { put_u32(b, at + kKey.size(), 6); }))
                .file_type,
            "");
  EXPECT_EQ(inspect_model(write_file(dir, DType::F32, [](std::string& b, size_t at) { b[at + 8] = 'G'; })).file_type,
            "");
}

TEST(ModelInfo, BitsPerWeightAreStoredBitsOverParameters) {
  TempDir dir;
  const ModelInfo info = inspect_model(write_file(dir, DType::F32));
  // One f32 tensor of 32 x 32 values against every parameter of the config.
  EXPECT_DOUBLE_EQ(info.bits_per_weight, 32.0 * 32 * 32 / double(info.params.total));
  EXPECT_NE(format_model_info(info).find("\nbits per weight             "), std::string::npos);
}

}  // namespace
}  // namespace jetmoe
