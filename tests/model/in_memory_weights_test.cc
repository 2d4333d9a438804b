// A Model over caller-owned memory (the trainer's master weights) computes what the same weights
// loaded from disk compute, and sees in-place updates without being rebuilt.
#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/hf_config.h"
#include "model/loss.h"
#include "model/model.h"
#include "model_test_util.h"

namespace jetmoe {
namespace {

const std::string kFixture = std::string(JETMOE_FIXTURES_DIR) + "/ref/top1_f32";

TEST(InMemoryWeights, MatchTheCheckpointAndSeeUpdatesInPlace) {
  const TensorStore disk = TensorStore::open_dir(kFixture);
  // fp32 copies the test owns.
  std::map<std::string, std::vector<float>> owned;
  std::vector<NamedTensor> views;
  for (const std::string& name : disk.names()) {
    const TensorView& v = disk.get(name);
    auto& buffer = owned[name];
    buffer.resize(size_t(v.numel()));
    to_f32(v.dtype, v.data, buffer.data(), buffer.size());
    views.push_back({name, TensorView{DType::F32, v.shape, buffer.data()}});
  }
  const JetMoeConfig config = load_config(kFixture + "/config.json");
  const Model in_memory(config, TensorStore::from_views(views, "master weights"));
  const auto from_disk = Model::load(kFixture);

  ThreadPool pool(1);
  const std::vector<int32_t> ids = {1, 5, 9, 3};
  FloatTensor a, b;
  KvCache ca = in_memory.make_cache(4), cb = from_disk->make_cache(4);
  in_memory.forward(ids, ca, a, pool);
  from_disk->forward(ids, cb, b, pool);
  EXPECT_EQ(a.values, b.values);

  for (float& w : owned["model.norm.weight"]) w *= 2.0f;  // an "optimizer step"
  ca.clear();
  in_memory.forward(ids, ca, a, pool);
  EXPECT_GT(max_abs_diff(a.values, b.values, 0, int64_t(b.values.size())), 1e-3);

  std::vector<NamedTensor> twice = {views[0], views[0]};
  EXPECT_THROW(TensorStore::from_views(twice, "dup"), Error);
}

}  // namespace
}  // namespace jetmoe

namespace jetmoe {
namespace {

// Packed training windows know the token after the window: T positions with T + 1 targets score
// T terms, exactly as a forward over all T + 1 tokens with HF-style labels would.
TEST(CrossEntropy, OneMoreTargetThanPositionsScoresTheLastPosition) {
  auto model = Model::load(kFixture);
  ThreadPool pool(1);
  const std::vector<int32_t> window = {1, 7, 3, 9, 4, 11};
  const std::span<const int32_t> inputs(window.data(), window.size() - 1);
  const std::vector<int64_t> targets(window.begin(), window.end());

  FloatTensor short_logits, long_logits;
  KvCache a = model->make_cache(8), b = model->make_cache(8);
  model->forward(inputs, a, short_logits, pool);
  model->forward(window, b, long_logits, pool);
  int64_t n_short = 0, n_long = 0;
  const double short_nll = next_token_nll_sum(short_logits, targets, &n_short);
  const double long_nll = next_token_nll_sum(long_logits, targets, &n_long);
  EXPECT_EQ(n_short, 5);
  EXPECT_EQ(n_long, 5);
  EXPECT_NEAR(short_nll, long_nll, 1e-4);

  const std::vector<int64_t> too_many(8, 1);
  EXPECT_THROW(next_token_nll_sum(short_logits, too_many, nullptr), Error);
}

}  // namespace
}  // namespace jetmoe
