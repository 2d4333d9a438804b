// JetMoE in GGUF: tensor names, config metadata, the export (safetensors -> GGUF at every file
// type), the embedded tokenizer, and a model run from the GGUF file against the checkpoint it
// came from.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "../tokenizer/tokenizer_assets.h"
#include "format_test_util.h"
#include "formats/gguf.h"
#include "formats/gguf_jetmoe.h"
#include "formats/model_files.h"
#include "gguf_jetmoe_test_util.h"
#include "model/weights.h"

namespace jetmoe {
namespace {

using testing::contains_all;
using testing::DequantizedWeights;
using testing::error_message;
using testing::expected_bytes;
using testing::export_gguf;
using testing::logits_gap;
using testing::LogitsGap;
using testing::param_names;
using testing::run_logits;
using testing::TempDir;
namespace fs = std::filesystem;

// All sizes multiples of 32, so that every matrix can be quantized; an untied head.
JetMoeConfig small_config() {
  JetMoeConfig c;
  c.vocab_size = 96;
  c.hidden_size = 64;
  c.num_layers = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 32;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;  // not a float32: must come back bit for bit
  c.rope_theta = 12345.678;
  c.initializer_range = 0.5;  // large weights: quantization errors show in the logits
  c.tie_word_embeddings = false;
  c.bos_token_id = 5;
  c.eos_token_id = 7;
  c.torch_dtype = DType::F32;
  return c;
}

// --- names --------------------------------------------------------------------------------------

TEST(GgufJetmoe, TensorNamesFollowTheDocumentedTable) {
  const std::vector<std::pair<std::string, std::string>> table = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
      {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
      {"model.layers.3.self_attention.experts.router.layer.weight", "blk.3.attn_gate_inp.weight"},
      {"model.layers.3.self_attention.experts.input_linear.weight", "blk.3.attn_q_exps.weight"},
      {"model.layers.3.self_attention.experts.output_linear.weight", "blk.3.attn_output_exps.weight"},
      {"model.layers.3.self_attention.experts.bias", "blk.3.attn_output.bias"},
      {"model.layers.3.self_attention.kv_proj.weight", "blk.3.attn_kv.weight"},
      {"model.layers.23.post_attention_layernorm.weight", "blk.23.ffn_norm.weight"},
      {"model.layers.23.mlp.router.layer.weight", "blk.23.ffn_gate_inp.weight"},
      {"model.layers.23.mlp.input_linear.weight", "blk.23.ffn_gate_up_exps.weight"},
      {"model.layers.23.mlp.output_linear.weight", "blk.23.ffn_down_exps.weight"},
      {"model.layers.23.mlp.bias", "blk.23.ffn_down.bias"},
  };
  for (const auto& [hf, gguf] : table) {
    EXPECT_EQ(gguf_tensor_name(hf), gguf) << hf;
    EXPECT_EQ(hf_tensor_name(gguf), hf) << gguf;
  }
}

TEST(GgufJetmoe, EveryParameterHasAUniqueNameThatMapsBack) {
  JetMoeConfig config = small_config();
  config.num_layers = 12;  // two-digit layers
  std::set<std::string> seen;
  for (const std::string& hf : param_names(config)) {
    const std::optional<std::string> gguf = gguf_tensor_name(hf);
    ASSERT_TRUE(gguf) << hf;
    EXPECT_LE(gguf->size(), kGgufMaxTensorNameBytes) << *gguf;
    EXPECT_TRUE(seen.insert(*gguf).second) << *gguf;
    EXPECT_EQ(hf_tensor_name(*gguf), hf);
  }
}

TEST(GgufJetmoe, NamesThatAreNotJetmoeParametersDoNotMap) {
  for (const char* name : {"blk.01.attn_norm.weight", "blk.x.attn_norm.weight", "blk..attn_norm.weight", "blk.1",
                           "blk.1.attn_q.weight", "token_embd", "model.layers.1.rotary_emb.inv_freq", "output.bias",
                           "blk.1234567890.attn_norm.weight"}) {
    EXPECT_EQ(hf_tensor_name(name), std::nullopt) << name;
    EXPECT_EQ(gguf_tensor_name(name), std::nullopt) << name;
  }
}

TEST(GgufJetmoe, StorageDtypePolicy) {
  using R = TensorRole;
  const DType bf16 = DType::BF16;
  for (R role : {R::kNorm, R::kBias, R::kRouter}) {
    for (DType type : {DType::Q6_K, DType::Q5_K, DType::Q4_K, DType::Q4_0, DType::Q8_0, DType::F16, DType::BF16, DType::F32})
      EXPECT_EQ(gguf_storage_dtype(role, type, 256, bf16, false), DType::F32);
  }
  EXPECT_EQ(gguf_storage_dtype(R::kMatrix, DType::Q4_0, 64, bf16, false), DType::Q4_0);
  EXPECT_EQ(gguf_storage_dtype(R::kEmbedding, DType::Q4_0, 64, bf16, false), DType::Q4_0);
  EXPECT_EQ(gguf_storage_dtype(R::kHead, DType::Q4_0, 64, bf16, false), DType::Q8_0);
  EXPECT_EQ(gguf_storage_dtype(R::kEmbedding, DType::Q4_0, 64, bf16, true), DType::Q8_0);  // it is the head too
  EXPECT_EQ(gguf_storage_dtype(R::kHead, DType::Q8_0, 64, bf16, false), DType::Q8_0);
  EXPECT_EQ(gguf_storage_dtype(R::kMatrix, DType::F16, 64, bf16, false), DType::F16);
  // Rows that cannot be split into blocks keep their dtype.
  EXPECT_EQ(gguf_storage_dtype(R::kMatrix, DType::Q8_0, 100, bf16, false), DType::BF16);
  EXPECT_EQ(gguf_storage_dtype(R::kMatrix, DType::Q8_0, 100, DType::F32, false), DType::F32);
  EXPECT_EQ(gguf_storage_dtype(R::kMatrix, DType::F16, 100, bf16, false), DType::F16);
  // The k-quants: rows of whole 256-value super-blocks; other rows of whole 32-value blocks fall
  // back to Q8_0; the head is Q8_0 in a 4- or 5-bit file as in a Q4_0 file, Q6_K in a Q6_K file.
  for (DType k : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const DType head = k == DType::Q6_K ? k : DType::Q8_0;
    EXPECT_EQ(gguf_storage_dtype(R::kMatrix, k, 512, bf16, false), k);
    EXPECT_EQ(gguf_storage_dtype(R::kEmbedding, k, 256, bf16, false), k);
    EXPECT_EQ(gguf_storage_dtype(R::kMatrix, k, 64, bf16, false), DType::Q8_0);
    EXPECT_EQ(gguf_storage_dtype(R::kMatrix, k, 288, bf16, false), DType::Q8_0);
    EXPECT_EQ(gguf_storage_dtype(R::kHead, k, 256, bf16, false), head);
    EXPECT_EQ(gguf_storage_dtype(R::kHead, k, 288, bf16, false), DType::Q8_0);
    EXPECT_EQ(gguf_storage_dtype(R::kEmbedding, k, 256, bf16, true), head);
    EXPECT_EQ(gguf_storage_dtype(R::kMatrix, k, 100, bf16, false), DType::BF16);
    EXPECT_EQ(gguf_storage_dtype(R::kMatrix, k, 100, DType::Q8_0, false), DType::F32);
  }
}

// --- config metadata -----------------------------------------------------------------------------

class GgufConfig : public ::testing::Test {
 protected:
  // Writes the metadata of `config`, then lets `edit` add or replace keys (as raw metadata).
  std::string write(const JetMoeConfig& config, const std::vector<GgufKeyValue>& extra = {},
                    const std::set<std::string>& drop = {}) {
    GgufWriter full;
    add_jetmoe_metadata(full, config, "small", DType::Q8_0);
    // Rebuild with the edits: dropped keys left out, extra keys replacing or adding.
    GgufWriter edited;
    const std::string path = dir_.file("meta.gguf");
    full.write(path);
    const GgufFile original(path);
    for (const GgufKeyValue& kv : original.metadata()) {
      if (drop.count(kv.key)) continue;
      bool replaced = false;
      for (const GgufKeyValue& e : extra) replaced = replaced || e.key == kv.key;
      if (!replaced) edited.set(kv.key, kv.value);
    }
    for (const GgufKeyValue& e : extra) edited.set(e.key, e.value);
    edited.write(path);
    return path;
  }
  std::string config_error(const std::vector<GgufKeyValue>& extra, const std::set<std::string>& drop = {}) {
    const std::string path = write(small_config(), extra, drop);
    return error_message([&] { config_from_gguf(GgufFile(path)); });
  }

  TempDir dir_;
};

TEST_F(GgufConfig, RoundTripsEveryFieldExactly) {
  JetMoeConfig c = small_config();
  c.aux_loss_coef = 0.03;
  c.torch_dtype = DType::F16;
  const JetMoeConfig back = config_from_gguf(GgufFile(write(c)));
  EXPECT_EQ(config_to_json(back), config_to_json(c));
  EXPECT_EQ(back.rms_norm_eps, 1e-5);
  EXPECT_EQ(back.rope_theta, 12345.678);
  EXPECT_EQ(back.initializer_range, 0.5);
  EXPECT_EQ(back.aux_loss_coef, 0.03);
  EXPECT_EQ(back.bos_token_id, 5);
  EXPECT_EQ(back.eos_token_id, 7);
  EXPECT_FALSE(back.tie_word_embeddings);
  EXPECT_EQ(back.torch_dtype, DType::F16);
}

TEST_F(GgufConfig, WritesTheDocumentedKeysAndTypes) {
  const GgufFile file(write(small_config()));
  const std::vector<std::pair<std::string, GgufType>> keys = {
      {"general.architecture", GgufType::kString}, {"general.name", GgufType::kString},
      {"general.alignment", GgufType::kUint32},    {"general.file_type", GgufType::kUint32},
      {"general.quantization_version", GgufType::kUint32},
      {"jetmoe.vocab_size", GgufType::kUint32},    {"jetmoe.context_length", GgufType::kUint32},
      {"jetmoe.embedding_length", GgufType::kUint32}, {"jetmoe.block_count", GgufType::kUint32},
      {"jetmoe.feed_forward_length", GgufType::kUint32}, {"jetmoe.expert_count", GgufType::kUint32},
      {"jetmoe.expert_used_count", GgufType::kUint32}, {"jetmoe.attention.head_count", GgufType::kUint32},
      {"jetmoe.attention.head_count_kv", GgufType::kUint32}, {"jetmoe.attention.key_length", GgufType::kUint32},
      {"jetmoe.attention.value_length", GgufType::kUint32},
      {"jetmoe.attention.layer_norm_rms_epsilon", GgufType::kFloat64},
      {"jetmoe.rope.dimension_count", GgufType::kUint32}, {"jetmoe.rope.freq_base", GgufType::kFloat64},
      {"jetmoe.tie_word_embeddings", GgufType::kBool}, {"tokenizer.ggml.bos_token_id", GgufType::kUint32},
      {"tokenizer.ggml.eos_token_id", GgufType::kUint32},
  };
  for (const auto& [key, type] : keys) {
    const GgufValue* value = file.find(key);
    ASSERT_NE(value, nullptr) << key;
    EXPECT_EQ(value->type, type) << key;
  }
  EXPECT_EQ(file.find("general.architecture")->text, "jetmoe");
  EXPECT_EQ(file.find("general.file_type")->as_int(), 7);  // MOSTLY_Q8_0
  EXPECT_EQ(file.find("jetmoe.attention.head_count")->as_int(), 4);  // kv heads x top-k
  EXPECT_EQ(file.find("jetmoe.attention.head_count_kv")->as_int(), 2);
  EXPECT_EQ(file.find("jetmoe.feed_forward_length")->as_int(), 32);
}

TEST_F(GgufConfig, WrongArchitectureOrMissingKeys) {
  EXPECT_TRUE(contains_all(config_error({{"general.architecture", GgufValue::of_string("llama")}}),
                           {"meta.gguf", "general.architecture is 'llama'", "only 'jetmoe'"}));
  EXPECT_TRUE(contains_all(config_error({}, {"general.architecture"}), {"meta.gguf", "missing metadata 'general.architecture'"}));
  EXPECT_TRUE(contains_all(config_error({}, {"jetmoe.block_count"}),
                           {"meta.gguf", "missing metadata 'jetmoe.block_count'", "num_hidden_layers"}));
  EXPECT_TRUE(contains_all(config_error({}, {"jetmoe.attention.head_count_kv"}), {"'jetmoe.attention.head_count_kv'"}));
}

TEST_F(GgufConfig, KeysOfTheWrongType) {
  EXPECT_TRUE(contains_all(config_error({{"jetmoe.expert_count", GgufValue::of_string("8")}}),
                           {"meta.gguf", "'jetmoe.expert_count' must be an integer, got string"}));
  EXPECT_TRUE(contains_all(config_error({{"jetmoe.rope.freq_base", GgufValue::of_u32(10000)}}),
                           {"'jetmoe.rope.freq_base' must be a float32 or float64, got uint32"}));
  EXPECT_TRUE(contains_all(config_error({{"jetmoe.tie_word_embeddings", GgufValue::of_u32(1)}}),
                           {"'jetmoe.tie_word_embeddings' must be a bool"}));
  EXPECT_TRUE(contains_all(config_error({{"general.architecture", GgufValue::of_strings({"jetmoe"})}}),
                           {"'general.architecture' must be a string, got array of string"}));
  EXPECT_TRUE(contains_all(config_error({{"jetmoe.vocab_size", GgufValue::of_u64(~uint64_t(0))}}),
                           {"'jetmoe.vocab_size'", "out of range"}));
  EXPECT_TRUE(contains_all(config_error({{"jetmoe.torch_dtype", GgufValue::of_string("int8")}}),
                           {"'jetmoe.torch_dtype' is 'int8'"}));
}

TEST_F(GgufConfig, ValuesValidatedLikeAConfigJson) {
  EXPECT_TRUE(contains_all(config_error({{"jetmoe.expert_used_count", GgufValue::of_u32(9)}}),
                           {"meta.gguf", "num_experts_per_tok must be between 1 and 4, got 9"}));
  EXPECT_TRUE(contains_all(config_error({{"tokenizer.ggml.eos_token_id", GgufValue::of_u32(96)}}),
                           {"meta.gguf", "eos_token_id must be between 0 and 95"}));
  EXPECT_TRUE(contains_all(config_error({{"jetmoe.attention.layer_norm_rms_epsilon", GgufValue::of_f64(-1)}}),
                           {"rms_norm_eps must be finite and > 0"}));
  EXPECT_TRUE(contains_all(config_error({{"jetmoe.attention.head_count", GgufValue::of_u32(2)}}),
                           {"'jetmoe.attention.head_count' is 2", "head_count_kv x expert_used_count = 4"}));
  EXPECT_TRUE(contains_all(config_error({{"jetmoe.rope.dimension_count", GgufValue::of_u32(8)}}),
                           {"'jetmoe.rope.dimension_count' is 8", "whole head"}));
  // Integer keys accept any integer type (the spec recommends uint64, llama.cpp writes uint32).
  const std::string path = write(small_config(), {{"jetmoe.block_count", GgufValue::of_u64(2)},
                                                  {"jetmoe.attention.layer_norm_rms_epsilon", GgufValue::of_f32(1e-6f)}});
  const JetMoeConfig c = config_from_gguf(GgufFile(path));
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.rms_norm_eps, double(1e-6f));
}

// --- export ---------------------------------------------------------------------------------------

// A random checkpoint directory of small_config() stored as `dtype`.
std::string make_checkpoint(const TempDir& dir, DType dtype, const std::string& name, double initializer_range = 0.5) {
  JetMoeConfig config = small_config();
  config.initializer_range = initializer_range;
  config.torch_dtype = dtype;
  return testing::write_checkpoint(dir, name, config, /*seed=*/11);
}

// A bound that does not rely on from_f32: every value of a Q8_0 block is within half a step
// (d / 2) of the original, of a Q4_0 block within one step (its largest level is 7 d, not 8 d);
// plus the rounding of d itself to f16.
void expect_within_quantization_error(const TensorView& original, const TensorView& quantized, const std::string& name) {
  const size_t n = size_t(original.numel());
  std::vector<float> x(n), y(n);
  to_f32(original.dtype, original.data, x.data(), n);
  to_f32(quantized.dtype, quantized.data, y.data(), n);
  const double steps = quantized.dtype == DType::Q8_0 ? 0.5 : 1.0;
  const double levels = quantized.dtype == DType::Q8_0 ? 127 : 8;
  for (size_t b = 0; b < n; b += kQuantBlock) {
    double amax = 0;
    for (size_t j = b; j < b + kQuantBlock; ++j) amax = std::max(amax, std::fabs(double(x[j])));
    const double d = amax / levels;
    for (size_t j = b; j < b + kQuantBlock; ++j) {
      ASSERT_LE(std::fabs(double(x[j]) - double(y[j])), steps * d * (1 + 1e-3) + amax * 1e-3 + 1e-30)
          << name << " value " << j;
    }
  }
}

TEST(GgufExport, EveryTensorIsWhatTheFileTypeAsksFor) {
  TempDir dir;
  for (const DType source : {DType::F32, DType::BF16}) {
    const std::string model_dir = make_checkpoint(dir, source, std::string("ckpt-") + std::string(dtype_name(source)));
    const ModelFiles original = open_model_files(model_dir);
    for (const DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
      const std::string label = str_cat(dtype_name(source), " -> ", dtype_name(type));
      const std::string path = export_gguf(model_dir, type, dir.file("out.gguf"), "small");
      const ModelFiles gguf = open_model_files(path);
      EXPECT_TRUE(gguf.is_gguf);
      EXPECT_EQ(config_to_json(gguf.config), config_to_json(original.config)) << label;
      std::vector<std::string> expected_names = param_names(original.config);
      std::sort(expected_names.begin(), expected_names.end());
      EXPECT_EQ(gguf.store.names(), expected_names) << label;
      EXPECT_NO_THROW(bind_weights(gguf.config, gguf.store)) << label;

      for (const std::string& name : expected_names) {
        const TensorView& src = original.store.get(name);
        const TensorView& got = gguf.store.get(name);
        const TensorRole role = tensor_role(name);
        const DType want = role == TensorRole::kNorm || role == TensorRole::kBias || role == TensorRole::kRouter
                               ? DType::F32
                           : role == TensorRole::kHead && type == DType::Q4_0 ? DType::Q8_0
                                                                              : type;
        ASSERT_EQ(got.dtype, want) << label << ": " << name;
        ASSERT_EQ(got.shape, src.shape) << label << ": " << name;
        if (want == src.dtype) {
          EXPECT_EQ(std::memcmp(got.data, src.data, src.nbytes()), 0) << label << ": " << name << " is not bit-identical";
        } else {
          const std::vector<unsigned char> expected = expected_bytes(src, want);
          ASSERT_EQ(got.nbytes(), expected.size());
          EXPECT_EQ(std::memcmp(got.data, expected.data(), expected.size()), 0) << label << ": " << name;
        }
        if (dtype_is_quantized(want)) expect_within_quantization_error(src, got, label + ": " + name);
      }
    }
  }
}

TEST(GgufExport, FileTypeKeysAndAlignment) {
  TempDir dir;
  const std::string model_dir = make_checkpoint(dir, DType::BF16, "ckpt");
  const GgufFile q4(export_gguf(model_dir, DType::Q4_0, dir.file("q4.gguf"), "small"));
  EXPECT_EQ(q4.find("general.file_type")->as_int(), 2);
  EXPECT_EQ(q4.find("general.quantization_version")->as_int(), 2);
  EXPECT_EQ(q4.find("general.name")->text, "small");
  for (const GgufTensor& t : q4.tensors()) EXPECT_EQ((q4.data_offset() + t.offset) % 32, 0u) << t.name;
  EXPECT_EQ(q4.tensors().front().name, "token_embd.weight");  // file order: embedding, blocks, norm, head
  EXPECT_EQ(q4.tensors().back().name, "output.weight");
  const GgufFile bf16(export_gguf(model_dir, DType::BF16, dir.file("bf16.gguf"), "small"));
  EXPECT_EQ(bf16.find("general.file_type")->as_int(), 32);
  EXPECT_EQ(bf16.find("general.quantization_version"), nullptr);  // nothing quantized
}

TEST(GgufExport, ConversionDoesNotDependOnTheThreadCount) {
  TempDir dir;
  const std::string model_dir = make_checkpoint(dir, DType::BF16, "ckpt");
  const std::string one = testing::read_bytes(export_gguf(model_dir, DType::Q4_0, dir.file("a.gguf"), "small", 1));
  const std::string three = testing::read_bytes(export_gguf(model_dir, DType::Q4_0, dir.file("b.gguf"), "small", 3));
  EXPECT_EQ(one, three);
}

TEST(GgufStore, RefusesTensorsThatAreNotJetmoeParameters) {
  TempDir dir;
  GgufWriter writer;
  add_jetmoe_metadata(writer, small_config(), "x", DType::F32);
  const float value = 0;
  writer.add_tensor("blk.0.attn_q.weight", TensorView{DType::F32, {1}, &value});
  writer.write(dir.file("odd.gguf"));
  EXPECT_TRUE(contains_all(error_message([&] { open_model_files(dir.file("odd.gguf")); }),
                           {"odd.gguf", "tensor 'blk.0.attn_q.weight'", "not a JetMoE tensor name"}));
}

TEST(GgufStore, ShapeErrorsNameTheGgufTensor) {
  TempDir dir;
  GgufWriter writer;
  add_jetmoe_metadata(writer, small_config(), "x", DType::F32);
  std::vector<float> zeros(64 * 96, 0.0f);
  writer.add_tensor("token_embd.weight", TensorView{DType::F32, {64, 96}, zeros.data()});  // transposed
  writer.write(dir.file("bad.gguf"));
  const ModelFiles files = open_model_files(dir.file("bad.gguf"));
  EXPECT_TRUE(contains_all(error_message([&] { bind_weights(files.config, files.store); }),
                           {"bad.gguf", "GGUF tensor 'token_embd.weight'", "model.embed_tokens.weight", "[64, 96]",
                            "[96, 64]"}));
}

TEST(GgufStore, OpeningAModelPathThatIsNeither) {
  TempDir dir;
  EXPECT_TRUE(contains_all(error_message([&] { open_model_files(dir.file("none")); }), {"none", "does not exist"}));
  testing::write_bytes(dir.file("config.json"), "{}");
  EXPECT_TRUE(contains_all(error_message([&] { open_model_files(dir.file("config.json")); }),
                           {"config.json", "not a GGUF file"}));
}

// --- tokenizer ------------------------------------------------------------------------------------

TEST(GgufTokenizer, EmbeddedTokenizersEncodeAsTheirFiles) {
  TempDir dir;
  std::vector<std::string> corpus = test::tokenizer_corpus();
  corpus.resize(std::min<size_t>(corpus.size(), 300));  // the bytes are compared above; this checks they load
  for (const char* asset : {"llama2/tokenizer.json", "spm/test.model"}) {
    const std::string model_dir = make_checkpoint(dir, DType::BF16, std::string("ckpt-") + (asset[0] == 'l' ? "json" : "spm"));
    const bool json = std::string(asset).ends_with(".json");
    fs::copy_file(test::tokenizer_asset(asset), fs::path(model_dir) / (json ? "tokenizer.json" : "tokenizer.model"));
    std::ofstream(fs::path(model_dir) / "tokenizer_config.json") << R"({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})";
    const std::string gguf = export_gguf(model_dir, DType::Q8_0, dir.file("tok.gguf"), "small");

    EXPECT_TRUE(model_has_tokenizer(gguf));
    const GgufFile file(gguf);
    EXPECT_EQ(file.find(json ? "tokenizer.huggingface.json" : "tokenizer.sentencepiece.model") != nullptr, true);
    EXPECT_EQ(file.find(json ? "tokenizer.sentencepiece.model" : "tokenizer.huggingface.json"), nullptr);
    EXPECT_EQ(file.find("tokenizer.chat_template")->text, "{% for m in messages %}{{ m.content }}{% endfor %}");
    EXPECT_EQ(read_model_tokenizer_data(gguf).hf_json, read_model_tokenizer_data(model_dir).hf_json);
    EXPECT_EQ(read_model_tokenizer_data(gguf).spm_model, read_model_tokenizer_data(model_dir).spm_model);

    const Tokenizer from_dir = Tokenizer::load(model_dir);
    const Tokenizer from_gguf = load_model_tokenizer(gguf);
    ASSERT_EQ(from_gguf.vocab_size(), from_dir.vocab_size()) << asset;
    for (const std::string& line : corpus) {
      const std::vector<int32_t> ids = from_dir.encode(line);
      ASSERT_EQ(from_gguf.encode(line), ids) << asset << ": " << test::show(line);
      ASSERT_EQ(from_gguf.decode(ids), from_dir.decode(ids)) << asset;
    }
  }
}

TEST(GgufTokenizer, AModelWithoutATokenizer) {
  TempDir dir;
  const std::string model_dir = make_checkpoint(dir, DType::BF16, "ckpt");
  const std::string gguf = export_gguf(model_dir, DType::BF16, dir.file("none.gguf"), "small");
  EXPECT_FALSE(model_has_tokenizer(gguf));
  EXPECT_FALSE(model_has_tokenizer(model_dir));
  EXPECT_TRUE(contains_all(error_message([&] { load_model_tokenizer(gguf); }),
                           {"none.gguf", "carries no tokenizer", "tokenizer.huggingface.json"}));
}

TEST(GgufTokenizer, ABrokenEmbeddedTokenizerIsReportedUnderTheGgufName) {
  TempDir dir;
  GgufWriter writer;
  add_jetmoe_metadata(writer, small_config(), "x", DType::F32);
  add_tokenizer_metadata(writer, {.hf_json = "{\"model\": 17", .spm_model = "", .chat_template = ""});
  writer.write(dir.file("broken.gguf"));
  const std::string message = error_message([&] { load_model_tokenizer(dir.file("broken.gguf")); });
  EXPECT_TRUE(contains_all(message, {"broken.gguf (tokenizer.huggingface.json)", "not valid JSON"}));
  EXPECT_EQ(message.find("/proc/self/fd"), std::string::npos) << message;

  GgufWriter typed;
  add_jetmoe_metadata(typed, small_config(), "x", DType::F32);
  typed.set("tokenizer.sentencepiece.model", GgufValue::of_string("not bytes"));
  typed.write(dir.file("typed.gguf"));
  EXPECT_TRUE(contains_all(error_message([&] { load_model_tokenizer(dir.file("typed.gguf")); }),
                           {"typed.gguf", "'tokenizer.sentencepiece.model' must be an array of uint8, got string"}));
}

// --- the model on GGUF weights ------------------------------------------------------------------

TEST(GgufModel, F32GgufGivesBitIdenticalLogits) {
  TempDir dir;
  const std::vector<int32_t> ids = {5, 17, 33, 90, 2, 64, 1};
  for (const DType source : {DType::F32, DType::BF16}) {
    const std::string model_dir = make_checkpoint(dir, source, std::string("ckpt-") + std::string(dtype_name(source)));
    const DType same = source;  // a file of the checkpoint's own type: every matrix byte for byte
    const FloatTensor expected = run_logits(open_model_files(model_dir), ids);
    const std::string gguf = export_gguf(model_dir, same, dir.file("same.gguf"), "small");
    const FloatTensor got = run_logits(open_model_files(gguf), ids);
    ASSERT_EQ(got.shape, expected.shape);
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.values.size() * sizeof(float)), 0) << dtype_name(source);
  }
}

// A quantized file runs its dequantized weights: its logits are those of a float32 model holding
// exactly the values the blocks decode to, up to the 8-bit rounding of activations that the
// quantized products apply (llama.cpp's numerics).
TEST(GgufModel, QuantizedGgufRunsItsDequantizedWeights) {
  TempDir dir;
  // JetMoE's own init scale: with larger weights the routers flip experts on tiny differences and
  // the comparison measures chaos, not quantization.
  const std::string model_dir = make_checkpoint(dir, DType::F32, "ckpt", 0.02);
  const std::vector<int32_t> ids = {5, 17, 33, 90, 2, 64, 1, 40, 41, 42};
  for (const DType type : {DType::Q8_0, DType::Q4_0}) {
    ModelFiles gguf = open_model_files(export_gguf(model_dir, type, dir.file("q.gguf"), "small"));
    const DequantizedWeights dequantized(gguf.store);
    ModelFiles reference = dequantized.model_files(gguf.config);

    const FloatTensor got = run_logits(std::move(gguf), ids);
    const FloatTensor expected = run_logits(std::move(reference), ids);
    ASSERT_EQ(got.shape, expected.shape);
    const LogitsGap gap = logits_gap(got, expected);
    // Activations enter the quantized products rounded to 8-bit blocks (relative error up to
    // 2^-8 per value), through every layer and the head: measured 2.2% of the logits' RMS for
    // both types at this size. A wrong block layout is off by the size of the logits.
    EXPECT_LE(gap.max_diff, 0.06 * gap.rms) << dtype_name(type) << ": logits RMS " << gap.rms;
  }
}

}  // namespace
}  // namespace jetmoe
