// ops::causal_attention against the oracle kernels::causal_attention on every ISA level: decoding
// (one token after a short cache, and after caches long enough to be split among ranges), prefill
// longer than one key block and one query block, top-k of 1 to 3 slots, head dims that are not
// multiples of any vector width; float32 and float16 cache rows.
#include <gtest/gtest.h>

#include <cmath>

#include "core/dtype.h"
#include "kernels/ops.h"
#include "kernels/ref/attention.h"
#include "kernel_test_util.h"

namespace jetmoe {
namespace {

using test::Isa;

struct Case {
  int64_t T, k, H, D, start;
};

// Rows as a KV cache of `type` holds them (bits), and those same values in float32 for the oracle.
struct CacheRows {
  std::vector<uint16_t> f16;
  std::vector<float> widened;
  const void* data(DType type, const std::vector<float>& f32) const {
    return type == DType::F16 ? static_cast<const void*>(f16.data()) : f32.data();
  }
};
CacheRows as_cache_rows(const std::vector<float>& rows, DType type) {
  if (type == DType::F32) return {{}, rows};
  CacheRows out{std::vector<uint16_t>(rows.size()), std::vector<float>(rows.size())};
  for (size_t i = 0; i < rows.size(); ++i) {
    out.f16[i] = f32_to_f16(rows[i]);
    out.widened[i] = f16_to_f32(out.f16[i]);
  }
  return out;
}

class AttentionTest : public testing::TestWithParam<Isa> {};

TEST_P(AttentionTest, MatchesOracle) {
  const Case cases[] = {
      {1, 2, 3, 8, 0},     {1, 2, 4, 64, 37},  {1, 2, 2, 128, 200}, {1, 3, 2, 20, 5},   {5, 2, 2, 24, 3},
      {40, 2, 2, 17, 0},   {70, 1, 3, 128, 5}, {33, 3, 2, 13, 70},  {130, 2, 1, 32, 0}, {17, 2, 16, 1, 1},
      {200, 2, 2, 24, 100},  // 5 query blocks, 3 key blocks, the last ones partial
      // Decoding over caches long enough to be cut into ranges whose softmaxes are merged (top-2;
      // two tokens of one slot, their causal limits one apart; one row).
      {1, 2, 2, 16, 3000},   {2, 1, 3, 40, 5000}, {1, 1, 16, 64, 2100},
      {2, 2, 3, 24, 7},      {2, 2, 2, 16, 1500},  // the most rows decoding takes: two tokens of top-2
      {1, 2, 17, 20, 45},  // more heads than a vector's lanes; a step of 14 positions ends in a pair
  };
  for (DType type : {DType::F32, DType::F16})
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const Case& c : cases) {
      const int64_t HD = c.H * c.D, rows = c.T * c.k, positions = c.start + c.T;
      const uint32_t seed = uint32_t(c.T * 131 + c.D * 7 + c.start);
      const std::vector<float> q = test::random_floats(size_t(rows * HD), seed, 0.5f);
      const std::vector<float> keys = test::random_floats(size_t(positions * HD), seed + 1, 0.5f);
      const std::vector<float> values = test::random_floats(size_t(positions * HD), seed + 2);
      // An F16 cache: the kernels read the rounded bits; the oracle gets the same values widened.
      const CacheRows k_rows = as_cache_rows(keys, type), v_rows = as_cache_rows(values, type);
      std::vector<float> got(size_t(rows * HD), NAN), want(size_t(rows * HD));
      const ops::KvRows kv{k_rows.data(type, keys), v_rows.data(type, values), type};
      ops::causal_attention(q.data(), c.T, c.k, c.H, c.D, kv, c.start, got.data(), pool, GetParam());
      kernels::causal_attention(q.data(), c.T, c.k, c.H, c.D, k_rows.widened.data(), v_rows.widened.data(), c.start,
                                want.data(), pool);
      // Each output is a convex combination of values (|v| < ~5 here); the two softmaxes differ
      // by a few ulps of each weight and the sums by gamma_n, so 1e-5 absolute is generous
      // while a wrong mask, head mapping or rescale is off by O(0.1).
      double worst = 0.0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
      EXPECT_LE(worst, 1e-5) << kernels::cpu::isa_name(GetParam()) << " " << dtype_name(type) << " T=" << c.T << " k=" << c.k << " H=" << c.H
                             << " D=" << c.D << " start=" << c.start << " threads=" << threads;
    }
  }
}

TEST_P(AttentionTest, LargeScoresDoNotOverflow) {
  // Scores near 1e4: the online softmax must subtract the running max, as the oracle does.
  ThreadPool pool(2);
  const int64_t T = 150, k = 2, H = 1, D = 16;  // more than one key block: the max moves between blocks
  std::vector<float> q = test::random_floats(size_t(T * k * D), 5, 30.0f);
  std::vector<float> keys = test::random_floats(size_t(T * D), 6, 30.0f);
  const std::vector<float> values = test::random_floats(size_t(T * D), 7);
  std::vector<float> got(q.size()), want(q.size());
  ops::causal_attention(q.data(), T, k, H, D, keys.data(), values.data(), 0, got.data(), pool, GetParam());
  kernels::causal_attention(q.data(), T, k, H, D, keys.data(), values.data(), 0, want.data(), pool);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << i;
    // Scores of magnitude ~1e4 carry absolute rounding ~1e-3 in either order, which the
    // exponentials turn into relative weight differences of that size.
    EXPECT_NEAR(got[i], want[i], 2e-2) << i;
  }
}

TEST_P(AttentionTest, RejectsCacheRowsOfAnotherType) {
  ThreadPool pool(1);
  const std::vector<float> q(8), rows(8);
  std::vector<float> out(8);
  const ops::KvRows kv{rows.data(), rows.data(), DType::BF16};
  try {
    ops::causal_attention(q.data(), 1, 1, 1, 8, kv, 0, out.data(), pool, GetParam());
    FAIL() << "BF16 cache rows were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("BF16"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, AttentionTest, testing::ValuesIn(kernels::cpu::runnable_isas()), test::isa_label);

}  // namespace
}  // namespace jetmoe
