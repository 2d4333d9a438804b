// Random checkpoints: every parameter present with the right shape, dtype and initial
// distribution; deterministic from the seed; loadable as a model.
#include "runtime/random_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "model/model.h"
#include "model/weights.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;

JetMoeConfig tiny_config() {
  JetMoeConfig c;
  c.vocab_size = 300;
  c.hidden_size = 48;
  c.num_layers = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.intermediate_size = 40;
  c.max_position_embeddings = 64;
  c.initializer_range = 0.02;
  return c;
}

class RandomCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("jetmoe_random_ckpt_" + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string dir(const std::string& name) const { return (root_ / name).string(); }

  fs::path root_;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<float> as_floats(const TensorView& v) {
  std::vector<float> out(size_t(v.numel()));
  to_f32(v.dtype, v.data, out.data(), out.size());
  return out;
}

TEST_F(RandomCheckpoint, HoldsEveryParameterInitializedAsSpecified) {
  const JetMoeConfig config = tiny_config();
  RandomCheckpointOptions options;
  options.seed = 5;
  options.dtype = DType::F32;
  write_random_checkpoint(config, dir("a"), options);

  const TensorStore store = TensorStore::open_dir(dir("a"));
  const std::vector<ParamSpec> specs = param_specs(config);
  EXPECT_EQ(store.names().size(), specs.size());
  for (const ParamSpec& spec : specs) {
    const TensorView& view = store.get(spec.name);
    EXPECT_EQ(view.shape, spec.shape) << spec.name;
    EXPECT_EQ(view.dtype, DType::F32);
    const std::vector<float> v = as_floats(view);
    if (spec.init == ParamSpec::Init::Normal) {
      double sum = 0, sum_sq = 0;
      for (float x : v) sum += x, sum_sq += double(x) * x;
      const double n = double(v.size()), mean = sum / n, std_dev = std::sqrt(sum_sq / n - mean * mean);
      // Sampling error of the std is about std/sqrt(2n); n >= 192 here, so 15% is > 2.9 sigma.
      EXPECT_NEAR(std_dev, 0.02, 0.15 * 0.02) << spec.name;
      EXPECT_NEAR(mean, 0.0, 4 * 0.02 / std::sqrt(n)) << spec.name;
    } else {
      const float want = spec.init == ParamSpec::Init::Ones ? 1.0f : 0.0f;
      for (float x : v) ASSERT_EQ(x, want) << spec.name;
    }
  }

  const JetMoeConfig back = load_config(dir("a") + "/config.json");
  EXPECT_EQ(back.torch_dtype, DType::F32);
  EXPECT_EQ(back.hidden_size, config.hidden_size);
  std::ifstream gen(dir("a") + "/generation_config.json");
  const nlohmann::json generation = nlohmann::json::parse(gen);
  EXPECT_EQ(generation.at("bos_token_id"), 1);
  EXPECT_EQ(generation.at("eos_token_id"), 2);
  EXPECT_EQ(generation.at("pad_token_id"), 2);

  // And it is a model: one forward pass runs and gives finite logits.
  const std::unique_ptr<Model> model = Model::load(dir("a"));
  ThreadPool pool(1);
  KvCache cache = model->make_cache(8);
  FloatTensor logits;
  model->forward(std::vector<int32_t>{1, 20, 30}, cache, logits, pool);
  for (float x : logits.values) ASSERT_TRUE(std::isfinite(x));
}

TEST_F(RandomCheckpoint, SameSeedSameWeightsOtherSeedOthers) {
  const JetMoeConfig config = tiny_config();
  const auto a = random_parameter_values(config, 1);
  EXPECT_EQ(a, random_parameter_values(config, 1));
  EXPECT_NE(a, random_parameter_values(config, 2));
}

TEST_F(RandomCheckpoint, WritesTheRequestedDtypeAndShards) {
  const JetMoeConfig config = tiny_config();
  RandomCheckpointOptions options;
  options.seed = 3;
  options.dtype = DType::BF16;
  options.max_shard_bytes = 20000;
  write_random_checkpoint(config, dir("sharded"), options);
  EXPECT_TRUE(fs::exists(dir("sharded") + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir("sharded") + "/model.safetensors"));
  EXPECT_EQ(load_config(dir("sharded") + "/config.json").torch_dtype, DType::BF16);

  // The stored values are the float draws rounded to bf16, whatever the sharding.
  const TensorStore store = TensorStore::open_dir(dir("sharded"));
  const std::vector<ParamSpec> specs = param_specs(config);
  const auto values = random_parameter_values(config, 3);
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorView& view = store.get(specs[i].name);
    ASSERT_EQ(view.dtype, DType::BF16);
    const uint16_t* bits = static_cast<const uint16_t*>(view.data);
    for (size_t j = 0; j < values[i].size(); ++j) ASSERT_EQ(bits[j], f32_to_bf16(values[i][j])) << specs[i].name;
  }
}

TEST_F(RandomCheckpoint, RefusesANonEmptyDirectoryUnlessTold) {
  const JetMoeConfig config = tiny_config();
  fs::create_directories(dir("busy"));
  std::ofstream(dir("busy") + "/notes.txt") << "keep me";
  RandomCheckpointOptions options;
  try {
    write_random_checkpoint(config, dir("busy"), options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not empty"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir("busy") + "/model.safetensors"));
  options.overwrite = true;
  write_random_checkpoint(config, dir("busy"), options);
  EXPECT_TRUE(fs::exists(dir("busy") + "/model.safetensors"));
}

TEST_F(RandomCheckpoint, CopiesTheTokenizerUnderTheNameLoadersLookFor) {
  fs::create_directories(root_);
  std::ofstream(dir("vocab.json")) << "{}";
  std::ofstream(dir("sp.model")) << "spm";
  RandomCheckpointOptions options;
  options.tokenizer = dir("vocab.json");
  write_random_checkpoint(tiny_config(), dir("with_json"), options);
  EXPECT_EQ(read_text(dir("with_json") + "/tokenizer.json"), "{}");

  options.tokenizer = dir("sp.model");
  write_random_checkpoint(tiny_config(), dir("with_model"), options);
  EXPECT_EQ(read_text(dir("with_model") + "/tokenizer.model"), "spm");

  options.tokenizer = dir("with_model");  // a directory: its tokenizer files
  write_random_checkpoint(tiny_config(), dir("from_dir"), options);
  EXPECT_EQ(read_text(dir("from_dir") + "/tokenizer.model"), "spm");

  options.tokenizer = dir("missing.model");
  options.overwrite = true;
  EXPECT_THROW(write_random_checkpoint(tiny_config(), dir("with_json"), options), Error);
}

}  // namespace
}  // namespace jetmoe
