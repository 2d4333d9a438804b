// The C++ forward against outputs computed by the Hugging Face `jetmoe` implementation itself
// (tests/fixtures/hf-reference, float32 compute). Tolerances come from each case's manifest.
#include <gtest/gtest.h>

#include <iostream>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/npy.h"
#include "model/loss.h"
#include "model/model.h"
#include "model_test_util.h"

namespace jetmoe {
namespace {

class HfReference : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = std::string(JETMOE_FIXTURES_DIR) + "/hf-reference/" + GetParam();
    std::ifstream in(dir_ + "/manifest.json");
    ASSERT_TRUE(in) << dir_;
    manifest_ = nlohmann::json::parse(in);
    model_ = Model::load(dir_ + "/ckpt");
  }
  std::string dir_;
  nlohmann::json manifest_;
  std::unique_ptr<Model> model_;
  ThreadPool pool_{2};
};

TEST_P(HfReference, LogitsRouterLogitsAndLoss) {
  const NpyArray ids = read_npy(dir_ + "/input_ids.npy");
  const NpyArray labels = read_npy(dir_ + "/labels.npy");
  const NpyArray want_logits = read_npy(dir_ + "/logits.npy");
  const NpyArray want_router = read_npy(dir_ + "/router_logits.npy");  // [L, 2, B, T, E]
  const NpyArray want_loss = read_npy(dir_ + "/loss.npy");
  const double logits_tol = manifest_["tolerances"]["logits_max_abs"];
  const double router_tol = manifest_["tolerances"]["router_logits_max_abs"];
  const double loss_tol = manifest_["tolerances"]["loss_abs"];
  const int64_t B = ids.shape[0], T = ids.shape[1], V = model_->config().vocab_size;
  const int64_t L = want_router.shape[0], E = want_router.shape[4];

  double nll = 0.0;
  int64_t terms = 0;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int32_t> row = row_ids(ids, b);
    RecordingObserver seen;
    KvCache cache = model_->make_cache(T);
    FloatTensor logits;
    model_->forward(row, cache, logits, pool_, LogitsMode::All, &seen);

    const double diff = max_abs_diff(logits.values, want_logits.values, b * T * V, T * V);
    std::cout << "[ measured ] " << GetParam() << " row " << b << ": max |logit - HF| = " << diff << "\n";
    EXPECT_LE(diff, logits_tol) << "row " << b;
    for (int64_t l = 0; l < L; ++l) {
      for (int which = 0; which < 2; ++which) {
        const auto& got = seen.get(which == 0 ? "attn_router_logits" : "mlp_router_logits", int(l));
        const int64_t offset = ((l * 2 + which) * B + b) * T * E;
        EXPECT_LE(max_abs_diff(got, want_router.values, offset, T * E), router_tol)
            << "layer " << l << (which == 0 ? " attention" : " MLP") << " router, row " << b;
      }
    }
    std::vector<int64_t> targets(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) targets[size_t(t)] = int64_t(labels.values[size_t(b * T + t)]);
    int64_t n = 0;
    nll += next_token_nll_sum(logits, targets, &n);
    terms += n;
  }
  EXPECT_NEAR(nll / double(terms), want_loss.values[0], loss_tol) << "mean next-token cross-entropy";
}

TEST_P(HfReference, GreedyGenerationWithKvCache) {
  const NpyArray ids = read_npy(dir_ + "/input_ids.npy");
  const NpyArray want_tokens = read_npy(dir_ + "/gen_tokens.npy");  // [B, N]
  const NpyArray want_logits = read_npy(dir_ + "/gen_logits.npy");  // [B, N, V]
  const double tol = manifest_["tolerances"]["logits_max_abs"];
  const int64_t B = ids.shape[0], T = ids.shape[1], N = want_tokens.shape[1], V = model_->config().vocab_size;
  for (int64_t b = 0; b < B; ++b) {
    KvCache cache = model_->make_cache(T + N);
    FloatTensor logits;
    std::vector<int32_t> feed = row_ids(ids, b);
    for (int64_t i = 0; i < N; ++i) {
      model_->forward(feed, cache, logits, pool_, LogitsMode::Last);
      EXPECT_LE(max_abs_diff(logits.values, want_logits.values, (b * N + i) * V, V), tol) << "row " << b << " step " << i;
      const int32_t next = argmax(logits.data(), V);
      ASSERT_EQ(next, int32_t(want_tokens.values[size_t(b * N + i)])) << "row " << b << " step " << i;
      feed = {next};
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, HfReference, ::testing::Values("c1_base_f32", "c4_bf16"));

}  // namespace
}  // namespace jetmoe
