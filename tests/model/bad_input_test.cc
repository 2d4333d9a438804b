// A checkpoint that does not match its config, and bad calls to forward, give errors that name
// the problem; none crashes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <utility>

#include <unistd.h>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "model/model.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;

const std::string kFixture = std::string(JETMOE_FIXTURES_DIR) + "/ref/top1_f32";

// Copies the fixture's tensors into `dir`, letting `edit` drop, add or replace some first.
class BrokenCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jetmoe_bad_ckpt_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy_file(kFixture + "/config.json", dir_ / "config.json");
    source_ = std::make_unique<TensorStore>(TensorStore::open_dir(kFixture));
    for (const std::string& name : source_->names()) tensors_.push_back({name, source_->get(name)});
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write() { write_checkpoint_tensors(dir_.string(), tensors_); }
  std::string load_error() {
    try {
      Model::load(dir_.string());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  std::unique_ptr<TensorStore> source_;
  std::vector<NamedTensor> tensors_;
};

TEST_F(BrokenCheckpoint, BadInputMissingTensorIsNamed) {
  std::erase_if(tensors_, [](const NamedTensor& t) { return t.name == "model.layers.1.mlp.bias"; });
  write();
  const std::string error = load_error();
  EXPECT_NE(error.find("missing tensor 'model.layers.1.mlp.bias'"), std::string::npos) << error;
}

TEST_F(BrokenCheckpoint, BadInputWrongShapeIsNamed) {
  for (NamedTensor& t : tensors_)
    if (t.name == "model.layers.0.self_attention.kv_proj.weight") t.view.shape = {t.view.shape[1], t.view.shape[0]};
  write();
  const std::string error = load_error();
  EXPECT_NE(error.find("'model.layers.0.self_attention.kv_proj.weight' has shape"), std::string::npos) << error;
  EXPECT_NE(error.find("config implies"), std::string::npos) << error;
}

TEST_F(BrokenCheckpoint, BadInputUnexpectedTensorIsNamed) {
  tensors_.push_back({"model.layers.7.mlp.bias", source_->get("model.layers.0.mlp.bias")});
  write();
  const std::string error = load_error();
  EXPECT_NE(error.find("unexpected tensor 'model.layers.7.mlp.bias'"), std::string::npos) << error;
}

// As in HF, tie_word_embeddings decides: a stray head beside tied embeddings is ignored, and so
// are saved RoPE buffers.
TEST_F(BrokenCheckpoint, TiedConfigIgnoresSavedHeadAndRopeBuffers) {
  tensors_.push_back({"lm_head.weight", source_->get("model.layers.0.mlp.router.layer.weight")});
  tensors_.push_back({"model.layers.0.self_attention.rotary_emb.inv_freq", source_->get("model.norm.weight")});
  write();
  EXPECT_EQ(load_error(), "");
  auto model = Model::load(dir_.string());
  EXPECT_EQ(model->weights().lm_head.data, model->weights().embed.data);
}

TEST_F(BrokenCheckpoint, BadInputMissingConfig) {
  write();
  fs::remove(dir_ / "config.json");
  const std::string error = load_error();
  EXPECT_NE(error.find("config.json"), std::string::npos) << error;
}

TEST(ForwardBadInput, BadInputIdsOutsideVocabularyAndContextOverflow) {
  auto model = Model::load(kFixture);
  ThreadPool pool(1);
  KvCache cache = model->make_cache(4);
  FloatTensor logits;
  const int32_t vocab = int32_t(model->config().vocab_size);
  std::vector<int32_t> too_big = {1, vocab};
  EXPECT_THROW(model->forward(too_big, cache, logits, pool), Error);
  std::vector<int32_t> negative = {-1};
  EXPECT_THROW(model->forward(negative, cache, logits, pool), Error);
  EXPECT_EQ(cache.length(), 0) << "a rejected call must not advance the cache";

  std::vector<int32_t> five = {1, 2, 3, 4, 5};
  try {
    model->forward(five, cache, logits, pool);
    FAIL() << "a prompt longer than the cache must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context overflow"), std::string::npos) << e.what();
  }
  std::vector<int32_t> none;
  EXPECT_THROW(model->forward(none, cache, logits, pool), Error);
}

TEST(ForwardBadInput, BadInputCacheOfAnotherModelIsRefused) {
  auto model = Model::load(kFixture);
  ThreadPool pool(1);
  FloatTensor logits;
  std::vector<int32_t> two = {1, 2};
  for (const auto& [layers, kv_heads] : {std::pair<int64_t, int64_t>{1, 0}, {0, 1}}) {
    JetMoeConfig other = model->config();
    other.num_layers += layers;
    other.num_kv_heads += kv_heads;
    KvCache foreign(other, 8);
    try {
      model->forward(two, foreign, logits, pool);
      FAIL() << "a cache of " << other.num_layers << " layers x " << other.kv_proj_size() << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("KV cache was made for another model"), std::string::npos) << e.what();
    }
    EXPECT_EQ(foreign.length(), 0);
  }
}

}  // namespace
}  // namespace jetmoe
