// JetMoE exported as a k-quant GGUF file (what `jetmoe quantize --type q4_k|q5_k|q6_k` writes):
// which dtype each tensor gets, the file-type keys, the bytes against core's quantizer, and a model
// run from the file against a float32 model holding exactly the values its blocks decode to. The
// config has rows of 256 (the k-quant) and of 128 (the Q8_0 fallback), and an untied head (Q8_0,
// but Q6_K in a Q6_K file).
#include <gtest/gtest.h>

#include <cstring>

#include "format_test_util.h"
#include "formats/gguf.h"
#include "formats/gguf_jetmoe.h"
#include "formats/model_files.h"
#include "gguf_jetmoe_test_util.h"
#include "model/weights.h"

namespace jetmoe {
namespace {

using testing::DequantizedWeights;
using testing::expected_bytes;
using testing::export_gguf;
using testing::logits_gap;
using testing::LogitsGap;
using testing::param_names;
using testing::run_logits;
using testing::TempDir;

JetMoeConfig k_quant_config() {
  JetMoeConfig c;
  c.vocab_size = 96;
  c.hidden_size = 256;  // rows of the embedding, attention inputs, kv_proj and the MLP input: k-quant
  c.num_layers = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.num_kv_heads = 2;
  c.head_dim = 64;           // attention outputs read rows of 128: Q8_0
  c.intermediate_size = 128;  // MLP outputs read rows of 128: Q8_0
  c.max_position_embeddings = 64;
  c.initializer_range = 0.02;
  c.tie_word_embeddings = false;
  c.torch_dtype = DType::F32;
  return c;
}

// A random float32 checkpoint of k_quant_config(), or of its variant with one expert per stack.
std::string make_checkpoint(const TempDir& dir, bool one_expert = false) {
  JetMoeConfig c = k_quant_config();
  if (one_expert) c.num_experts = c.top_k = 1;
  return testing::write_checkpoint(dir, "ckpt", c, /*seed=*/21);
}

// A k-quant file type and the ids llama.cpp gives it.
struct KQuantFile {
  DType type;
  int file_type;       // general.file_type (llama_ftype)
  uint32_t ggml_type;  // of its k-quant tensors
};

class GgufKQuant : public ::testing::TestWithParam<KQuantFile> {
 protected:
  DType type() const { return GetParam().type; }
  std::string export_file(const std::string& model_dir, const std::string& path, int threads = 2) const {
    return export_gguf(model_dir, type(), path, "kq", threads);
  }
};

// The documented table (docs/gguf.md) for this config, by HF name.
DType expected_dtype(const std::string& name, DType k_quant) {
  const TensorRole role = tensor_role(name);
  if (role == TensorRole::kNorm || role == TensorRole::kBias || role == TensorRole::kRouter) return DType::F32;
  if (role == TensorRole::kHead) return k_quant == DType::Q6_K ? DType::Q6_K : DType::Q8_0;
  if (name.ends_with("experts.output_linear.weight") || name.ends_with("mlp.output_linear.weight")) return DType::Q8_0;
  return k_quant;  // embedding, attention inputs, kv_proj, MLP input: rows of 256
}

TEST_P(GgufKQuant, EveryTensorIsStoredAsTheTableSaysByteForByte) {
  TempDir dir;
  const std::string model_dir = make_checkpoint(dir);
  const ModelFiles original = open_model_files(model_dir);
  const ModelFiles gguf = open_model_files(export_file(model_dir, dir.file("kq.gguf")));
  EXPECT_NO_THROW(bind_weights(gguf.config, gguf.store));
  int k_quant_tensors = 0;
  for (const std::string& name : param_names(original.config)) {
    const TensorView& src = original.store.get(name);
    const TensorView& got = gguf.store.get(name);
    ASSERT_EQ(got.dtype, expected_dtype(name, type())) << name;
    ASSERT_EQ(got.shape, src.shape) << name;
    k_quant_tensors += got.dtype == type();
    const std::vector<unsigned char> want = expected_bytes(src, got.dtype);
    ASSERT_EQ(got.nbytes(), want.size()) << name;
    EXPECT_EQ(std::memcmp(got.data, want.data(), want.size()), 0) << name;
  }
  // The embedding; per layer attention inputs, kv_proj, MLP input; in a Q6_K file the head.
  EXPECT_EQ(k_quant_tensors, 1 + 2 * 3 + (type() == DType::Q6_K));
}

TEST_P(GgufKQuant, FileAndTensorTypesAreLlamaCpps) {
  TempDir dir;
  const GgufFile file(export_file(make_checkpoint(dir), dir.file("kq.gguf")));
  EXPECT_EQ(file.find("general.file_type")->as_int(), GetParam().file_type);
  EXPECT_EQ(file.find("general.quantization_version")->as_int(), 2);
  int k_quant_tensors = 0;
  for (const GgufTensor& t : file.tensors()) {
    EXPECT_EQ((file.data_offset() + t.offset) % 32, 0u) << t.name;
    if (t.view.dtype == type()) {
      EXPECT_EQ(t.ggml_type, GetParam().ggml_type) << t.name;
      ++k_quant_tensors;
    }
  }
  EXPECT_GT(k_quant_tensors, 0);
}

TEST_P(GgufKQuant, ConversionDoesNotDependOnTheThreadCount) {
  TempDir dir;
  const std::string model_dir = make_checkpoint(dir);
  EXPECT_EQ(testing::read_bytes(export_file(model_dir, dir.file("a.gguf"), 1)),
            testing::read_bytes(export_file(model_dir, dir.file("b.gguf"), 3)));
}

// The file runs its dequantized weights: its logits are those of a float32 model holding exactly
// the values its blocks decode to, up to the 8-bit rounding of activations that the quantized
// products apply. 10 tokens: both the decoding (gemv) and prefill (gemm) kernels run. One expert
// per stack: with a choice of experts, that rounding can flip a near-tie of the routers, which
// moves the position's logits by their own size (it did for one position of ten with Q6_K).
TEST_P(GgufKQuant, TheModelRunsItsDequantizedWeights) {
  TempDir dir;
  ModelFiles gguf = open_model_files(export_file(make_checkpoint(dir, /*one_expert=*/true), dir.file("kq.gguf")));
  const DequantizedWeights dequantized(gguf.store);
  for (const std::vector<int32_t>& ids : {std::vector<int32_t>{5, 17, 33, 90, 2, 64, 1, 40, 41, 42}, {7, 8}}) {
    const FloatTensor got = run_logits(open_model_files(dir.file("kq.gguf")), ids);
    const FloatTensor expected = run_logits(dequantized.model_files(gguf.config), ids);
    ASSERT_EQ(got.shape, expected.shape);
    const LogitsGap gap = logits_gap(got, expected);
    // The bound of gguf_jetmoe_test's Q8_0 / Q4_0 check (activations rounded to 8-bit blocks,
    // relative error up to 2^-8 per value, through every layer); a wrong nibble, sub-block or
    // min is off by the size of the logits.
    EXPECT_LE(gap.max_diff, 0.06 * gap.rms) << ids.size() << " tokens: logits RMS " << gap.rms;
  }
}

// llama.cpp's ids: MOSTLY_Q4_K_S = 14 with ggml type Q4_K = 12; MOSTLY_Q5_K_S = 16, Q5_K = 13;
// MOSTLY_Q6_K = 18, Q6_K = 14.
INSTANTIATE_TEST_SUITE_P(, GgufKQuant,
                         ::testing::Values(KQuantFile{DType::Q4_K, 14, 12}, KQuantFile{DType::Q5_K, 16, 13},
                                           KQuantFile{DType::Q6_K, 18, 14}),
                         [](const ::testing::TestParamInfo<KQuantFile>& info) {
                           return std::string(dtype_name(info.param.type));
                         });

}  // namespace
}  // namespace jetmoe
