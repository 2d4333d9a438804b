// The _M file types (what `jetmoe quantize --type q4_k_m|q5_k_m` writes): their names and ids,
// the layers llama.cpp's rule widens, which dtype each tensor gets, the bytes against core's
// quantizers, and a model run from the file against a float32 model holding exactly the values
// its blocks decode to. The config has 8 layers (the rule picks 0, 3, 6 and 7) and rows of 256
// everywhere, so that every matrix is a k-quant; one expert per stack, so that activation
// rounding cannot flip a routing decision.
#include <gtest/gtest.h>

#include <cstring>
#include <ostream>
#include <set>

#include "format_test_util.h"
#include "formats/gguf.h"
#include "formats/gguf_file_type.h"
#include "formats/gguf_jetmoe.h"
#include "formats/model_files.h"
#include "gguf_jetmoe_test_util.h"
#include "model/weights.h"

namespace jetmoe {

// gtest's name for a parameter: "Q4_K_M" rather than its bytes.
void PrintTo(const GgufFileType& type, std::ostream* os) { *os << gguf_file_type_name(type); }

namespace {

using testing::DequantizedWeights;
using testing::expected_bytes;
using testing::export_gguf;
using testing::logits_gap;
using testing::LogitsGap;
using testing::param_names;
using testing::run_logits;
using testing::TempDir;

TEST(GgufFileType, ParsesLlamaCppNamesInAnyCase) {
  EXPECT_EQ(parse_gguf_file_type("q4_k_m"), kQ4KMedium);
  EXPECT_EQ(parse_gguf_file_type("Q4_K_M"), kQ4KMedium);
  EXPECT_EQ(parse_gguf_file_type("q5_K_m"), kQ5KMedium);
  EXPECT_EQ(parse_gguf_file_type("q4_k_s"), GgufFileType(DType::Q4_K));
  EXPECT_EQ(parse_gguf_file_type("q4_k"), GgufFileType(DType::Q4_K));
  EXPECT_EQ(parse_gguf_file_type("Q5_K_S"), GgufFileType(DType::Q5_K));
  EXPECT_EQ(parse_gguf_file_type("q6_k"), GgufFileType(DType::Q6_K));
  EXPECT_EQ(parse_gguf_file_type("Q8_0"), GgufFileType(DType::Q8_0));
  EXPECT_EQ(parse_gguf_file_type("bf16"), GgufFileType(DType::BF16));
  for (const char* bad : {"", "q4_k_l", "q6_k_m", "q6_k_s", "q8_0_m", "f16_s", "q3_k_m", "q4_k_m ", "_k_m", "q4_km"})
    EXPECT_EQ(parse_gguf_file_type(bad), std::nullopt) << "'" << bad << "'";
}

// llama.cpp's llama_ftype numbers and names (the e2e test checks them against @huggingface/gguf).
TEST(GgufFileType, NamesAndIdsAreLlamaCpps) {
  struct Case {
    GgufFileType type;
    const char* name;
    uint32_t id;
  };
  for (const Case& c : {Case{DType::F32, "F32", 0}, Case{DType::F16, "F16", 1}, Case{DType::Q4_0, "Q4_0", 2},
                        Case{DType::Q8_0, "Q8_0", 7}, Case{DType::Q4_K, "Q4_K_S", 14}, Case{kQ4KMedium, "Q4_K_M", 15},
                        Case{DType::Q5_K, "Q5_K_S", 16}, Case{kQ5KMedium, "Q5_K_M", 17}, Case{DType::Q6_K, "Q6_K", 18},
                        Case{DType::BF16, "BF16", 32}}) {
    EXPECT_EQ(gguf_file_type_name(c.type), c.name);
    EXPECT_EQ(gguf_file_type_id(c.type), c.id) << c.name;
    EXPECT_EQ(parse_gguf_file_type(c.name), c.type) << c.name;
    EXPECT_EQ(gguf_file_type_of_id(c.id), c.type) << c.name;
  }
  for (int64_t unknown : {-1, 3, 8, 10, 19, 31, 33, 1 << 20}) EXPECT_EQ(gguf_file_type_of_id(unknown), std::nullopt) << unknown;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between.
TEST(GgufQuantMix, TheWidenedLayersAreLlamaCpps) {
  auto widened = [](int64_t layers) {
    std::set<int64_t> picked;
    for (int64_t i = 0; i < layers; ++i)
      if (gets_more_bits(i, layers)) picked.insert(i);
    return picked;
  };
  EXPECT_EQ(widened(24), (std::set<int64_t>{0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23}));  // JetMoE-8B
  EXPECT_EQ(widened(32), (std::set<int64_t>{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}));
  EXPECT_EQ(widened(8), (std::set<int64_t>{0, 3, 6, 7}));
  EXPECT_EQ(widened(2), (std::set<int64_t>{1}));
}

TEST(GgufQuantMix, TensorPlacesNameTheRoleAndLayer) {
  const TensorPlace down = tensor_place("model.layers.21.mlp.output_linear.weight", 24);
  EXPECT_EQ(down.role, TensorRole::kExpertDown);
  EXPECT_EQ(down.layer, 21);
  EXPECT_EQ(down.layers, 24);
  const TensorPlace kv = tensor_place("model.layers.107.self_attention.kv_proj.weight", 200);
  EXPECT_EQ(kv.role, TensorRole::kKvProjection);
  EXPECT_EQ(kv.layer, 107);
  EXPECT_EQ(tensor_place("model.layers.3.mlp.input_linear.weight", 24).role, TensorRole::kMatrix);
  EXPECT_EQ(tensor_place("lm_head.weight", 24).role, TensorRole::kHead);
  EXPECT_THROW(tensor_place("model.layers.3.mlp.rotary.weight", 24), Error);
}

TEST(GgufQuantMix, StorageDtypePolicy) {
  using R = TensorRole;
  const DType bf16 = DType::BF16;
  for (const GgufFileType mix : {kQ4KMedium, kQ5KMedium}) {
    const DType k = mix.weights;
    for (R role : {R::kNorm, R::kBias, R::kRouter}) EXPECT_EQ(gguf_storage_dtype({role, 0, 24}, mix, 256, bf16, false), DType::F32);
    EXPECT_EQ(gguf_storage_dtype(R::kHead, mix, 256, bf16, false), DType::Q6_K);
    EXPECT_EQ(gguf_storage_dtype(R::kEmbedding, mix, 256, bf16, true), DType::Q6_K);  // it is the head too
    EXPECT_EQ(gguf_storage_dtype(R::kEmbedding, mix, 256, bf16, false), k);
    for (int64_t layer : {0, 5, 23}) {
      for (R role : {R::kKvProjection, R::kExpertDown}) {
        EXPECT_EQ(gguf_storage_dtype({role, layer, 24}, mix, 512, bf16, false), DType::Q6_K) << layer;
        EXPECT_EQ(gguf_storage_dtype({role, layer, 24}, k, 512, bf16, false), k) << "a uniform file widens nothing";
        EXPECT_EQ(gguf_storage_dtype({role, layer, 24}, mix, 128, bf16, false), DType::Q8_0) << "rows of 128";
        EXPECT_EQ(gguf_storage_dtype({role, layer, 24}, mix, 100, bf16, false), bf16) << "rows of 100";
      }
      EXPECT_EQ(gguf_storage_dtype({R::kMatrix, layer, 24}, mix, 512, bf16, false), k);
    }
    for (int64_t layer : {3, 4, 19})
      for (R role : {R::kKvProjection, R::kExpertDown, R::kMatrix})
        EXPECT_EQ(gguf_storage_dtype({role, layer, 24}, mix, 512, bf16, false), k) << layer;
  }
}

// Rows of 256 everywhere, 8 layers, one expert per stack, an untied head.
JetMoeConfig mix_config() {
  JetMoeConfig c;
  c.vocab_size = 96;
  c.hidden_size = 256;
  c.num_layers = 8;
  c.num_experts = 1;
  c.top_k = 1;
  c.num_kv_heads = 2;
  c.head_dim = 128;
  c.intermediate_size = 256;
  c.max_position_embeddings = 64;
  c.initializer_range = 0.02;
  c.tie_word_embeddings = false;
  c.torch_dtype = DType::F32;
  return c;
}

class GgufQuantMixFile : public ::testing::TestWithParam<GgufFileType> {
 protected:
  std::string export_file(const TempDir& dir) const {
    const std::string model_dir = testing::write_checkpoint(dir, "ckpt", mix_config(), /*seed=*/23);
    return export_gguf(model_dir, GetParam(), dir.file("mix.gguf"), "mix");
  }
};

// What docs/gguf.md says for this config, restated by name: Q6_K for the head and for kv_proj
// and the MLP output of layers 0, 3, 6 and 7; F32 for norms, biases and routers.
DType documented_dtype(const std::string& name, DType k_quant) {
  if (name.ends_with("norm.weight") || name.ends_with("bias") || name.ends_with("router.layer.weight"))
    return DType::F32;
  if (name == "lm_head.weight") return DType::Q6_K;
  for (const char* layer : {"model.layers.0.", "model.layers.3.", "model.layers.6.", "model.layers.7."}) {
    if (name.starts_with(layer) &&
        (name.ends_with("self_attention.kv_proj.weight") || name.ends_with("mlp.output_linear.weight")))
      return DType::Q6_K;
  }
  return k_quant;
}

TEST_P(GgufQuantMixFile, EveryTensorIsStoredAsDocumentedByteForByte) {
  TempDir dir;
  const std::string path = export_file(dir);
  const ModelFiles original = open_model_files(dir.file("ckpt"));
  const ModelFiles gguf = open_model_files(path);
  EXPECT_NO_THROW(bind_weights(gguf.config, gguf.store));
  int widened = 0;
  for (const std::string& name : param_names(original.config)) {
    const TensorView& src = original.store.get(name);
    const TensorView& got = gguf.store.get(name);
    ASSERT_EQ(got.dtype, documented_dtype(name, GetParam().weights)) << name;
    widened += got.dtype == DType::Q6_K;
    const std::vector<unsigned char> want = expected_bytes(src, got.dtype);
    ASSERT_EQ(got.nbytes(), want.size()) << name;
    EXPECT_EQ(std::memcmp(got.data, want.data(), want.size()), 0) << name;
  }
  EXPECT_EQ(widened, 1 + 4 * 2);
}

TEST_P(GgufQuantMixFile, TheFileTypeIsLlamaCpps) {
  TempDir dir;
  const GgufFile file(export_file(dir));
  EXPECT_EQ(file.find("general.file_type")->as_int(), GetParam() == kQ4KMedium ? 15 : 17);
  EXPECT_EQ(file.find("general.quantization_version")->as_int(), 2);
}

// Both the decoding (gemv) and prefill (gemm) products run, over Q6_K and the file's k-quant.
TEST_P(GgufQuantMixFile, TheModelRunsItsDequantizedWeights) {
  TempDir dir;
  const std::string path = export_file(dir);
  ModelFiles gguf = open_model_files(path);
  const DequantizedWeights dequantized(gguf.store);
  for (const std::vector<int32_t>& ids : {std::vector<int32_t>{5, 17, 33, 90, 2, 64, 1, 40, 41, 42}, {7, 8}}) {
    const FloatTensor got = run_logits(open_model_files(path), ids);
    const FloatTensor expected = run_logits(dequantized.model_files(gguf.config), ids);
    ASSERT_EQ(got.shape, expected.shape);
    const LogitsGap gap = logits_gap(got, expected);
    EXPECT_LE(gap.max_diff, 0.06 * gap.rms) << ids.size() << " tokens: logits RMS " << gap.rms;
  }
}

INSTANTIATE_TEST_SUITE_P(, GgufQuantMixFile, ::testing::Values(kQ4KMedium, kQ5KMedium),
                         [](const ::testing::TestParamInfo<GgufFileType>& info) {
                           return gguf_file_type_name(info.param);
                         });

}  // namespace
}  // namespace jetmoe
