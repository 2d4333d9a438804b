// The float16 KV cache through the whole model, on the T=130 reference case
// (tests/fixtures/ref/long_f32, float64 reference logits). Rounding K and V to f16 moves each by
// at most 2^-11 of itself, so scores and attention outputs move by about that fraction: the
// logits stay within a small fraction of their range of the reference, while reading the rows
// as anything but f16 (a wrong stride, bf16 bits, a missing widening) moves them by their size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "formats/npy.h"
#include "model/model.h"
#include "model_test_util.h"

namespace jetmoe {
namespace {

class F16KvCache : public testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(dir_);
    ids_ = row_ids(read_npy(dir_ + "/input_ids.npy"), 0);
  }
  std::vector<float> prefill(DType type) {
    KvCache cache = model_->make_cache(int64_t(ids_.size()), type);
    FloatTensor logits;
    model_->forward(ids_, cache, logits, pool_, LogitsMode::All);
    return logits.values;
  }
  const std::string dir_ = std::string(JETMOE_FIXTURES_DIR) + "/ref/long_f32";
  std::unique_ptr<Model> model_;
  std::vector<int32_t> ids_;
  ThreadPool pool_{2};
};

TEST_F(F16KvCache, PrefillStaysNearTheFloat64Reference) {
  const NpyArray want = read_npy(dir_ + "/logits.npy");
  const std::vector<float> f16 = prefill(DType::F16), f32 = prefill(DType::F32);
  double range = 0.0;
  for (double v : want.values) range = std::max(range, std::fabs(v));
  const int64_t n = int64_t(want.values.size());
  const double vs_reference = max_abs_diff(f16, want.values, 0, n), vs_f32 = max_abs_diff(f16, f32, 0, n);
  std::cout << "[ measured ] f16 KV cache: max |logit - float64 reference| = " << vs_reference << " (max |logit| "
            << range << "), vs the f32 cache " << vs_f32 << "\n";
  EXPECT_LE(vs_reference, 2e-3 * range);
  EXPECT_GT(vs_f32, 0.0) << "the f16 cache did not round: logits equal the f32 cache's bit for bit";
}

// Decoding one token at a time (the decoding attention kernel, on rows it rounded itself) stays
// as near the reference as the prefill. The two need not agree more closely than that: their K/V
// products sum in different fp32 orders, and a value right at an f16 rounding boundary then
// rounds to neighbouring halves (measured 8e-5 to 1.3e-3 apart across the ISAs).
TEST_F(F16KvCache, IncrementalDecodingStaysNearTheFloat64Reference) {
  const NpyArray want = read_npy(dir_ + "/logits.npy");
  const int64_t T = int64_t(ids_.size()), V = model_->config().vocab_size;
  double range = 0.0;
  for (double v : want.values) range = std::max(range, std::fabs(v));
  KvCache cache = model_->make_cache(T, DType::F16);
  FloatTensor step;
  double worst = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    model_->forward(std::span<const int32_t>(ids_.data() + t, 1), cache, step, pool_);
    worst = std::max(worst, max_abs_diff(step.values, want.values, t * V, V));
  }
  std::cout << "[ measured ] f16 KV cache, decoding: max |logit - float64 reference| = " << worst << "\n";
  EXPECT_LE(worst, 2e-3 * range);
}

TEST_F(F16KvCache, HoldsHalfTheBytesAndRejectsOtherTypes) {
  const KvCache f32 = model_->make_cache(64), f16 = model_->make_cache(64, DType::F16);
  EXPECT_EQ(f16.bytes() * 2, f32.bytes());
  EXPECT_EQ(f32.bytes(), size_t(2 * 64 * model_->config().num_layers * model_->config().kv_proj_size() * 4));
  EXPECT_THROW(model_->make_cache(64, DType::BF16), Error);
  EXPECT_THROW((void)f16.f32_keys(0), Error);
}

TEST(KvCacheType, ParsesTheCliSpelling) {
  DType type = DType::Q8_0;
  EXPECT_TRUE(parse_kv_cache_type("f16", &type));
  EXPECT_EQ(type, DType::F16);
  EXPECT_TRUE(parse_kv_cache_type("F32", &type));
  EXPECT_EQ(type, DType::F32);
  for (const char* bad : {"bf16", "q8_0", "", "f16 ", "fp16"}) EXPECT_FALSE(parse_kv_cache_type(bad, &type)) << bad;
}

}  // namespace
}  // namespace jetmoe
