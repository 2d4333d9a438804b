// ops::causal_attention against the oracle kernels::causal_attention on every ISA level: decoding
// (one token after a short cache, and after caches long enough to be split among ranges), prefill
// longer than one key block and one query block, top-k of 1 to 3 slots, head dims that are not
// multiples of any vector width; float32 and float16 cache rows; fp32 and bf16 products.
#include <gtest/gtest.h>

#include <cmath>

#include "core/dtype.h"
#include "kernels/ops.h"
#include "kernels/cpu/kernel_table.h"
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

// Random queries and K/V rows of a case, the rows as a cache of `type` holds them.
struct CaseData {
  std::vector<float> q, keys, values;
  CacheRows k_rows, v_rows;
  DType type;
  CaseData(const Case& c, DType cache_type, uint32_t seed) : type(cache_type) {
    const int64_t HD = c.H * c.D, positions = c.start + c.T;
    q = test::random_floats(size_t(c.T * c.k * HD), seed, 0.5f);
    keys = test::random_floats(size_t(positions * HD), seed + 1, 0.5f);
    values = test::random_floats(size_t(positions * HD), seed + 2);
    k_rows = as_cache_rows(keys, type);
    v_rows = as_cache_rows(values, type);
  }
  // What the kernels read: an F16 cache's rounded bits; the oracle gets the same values widened.
  ops::KvRows kv() const { return {k_rows.data(type, keys), v_rows.data(type, values), type}; }
  // The oracle on the widened rows.
  void oracle(const Case& c, float* out, ThreadPool& pool, bool bf16_products) const {
    kernels::causal_attention(q.data(), c.T, c.k, c.H, c.D, k_rows.widened.data(), v_rows.widened.data(), c.start,
                              out, pool, bf16_products);
  }
};

std::string label(Isa isa, DType type, const Case& c) {
  return std::string(kernels::cpu::isa_name(isa)) + " " + std::string(dtype_name(type)) + " T=" + std::to_string(c.T) +
         " k=" + std::to_string(c.k) + " H=" + std::to_string(c.H) + " D=" + std::to_string(c.D) +
         " start=" + std::to_string(c.start);
}

class AttentionTest : public testing::TestWithParam<Isa> {};

const Case kCases[] = {
      {1, 2, 3, 8, 0},     {1, 2, 4, 64, 37},  {1, 2, 2, 128, 200}, {1, 3, 2, 20, 5},   {5, 2, 2, 24, 3},
      {40, 2, 2, 17, 0},   {70, 1, 3, 128, 5}, {33, 3, 2, 13, 70},  {130, 2, 1, 32, 0}, {17, 2, 16, 1, 1},
      {200, 2, 2, 24, 100},  // 5 query blocks, 3 key blocks, the last ones partial
      {49, 2, 2, 24, 10},    // 98 rows: a last query block of 2 rows
      // Decoding over caches long enough to be cut into ranges whose softmaxes are merged (top-2;
      // two tokens of one slot, their causal limits one apart; one row).
      {1, 2, 2, 16, 3000},   {2, 1, 3, 40, 5000}, {1, 1, 16, 64, 2100},
      {2, 2, 3, 24, 7},      {2, 2, 2, 16, 1500},  // the most rows decoding takes: two tokens of top-2
      {1, 2, 17, 20, 45},  // more heads than a vector's lanes; a step of 14 positions ends in a pair
};

TEST_P(AttentionTest, MatchesOracle) {
  const auto& cases = kCases;
  for (DType type : {DType::F32, DType::F16})
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const Case& c : cases) {
      const CaseData data(c, type, uint32_t(c.T * 131 + c.D * 7 + c.start));
      std::vector<float> got(data.q.size(), NAN), want(data.q.size());
      ops::causal_attention(data.q.data(), c.T, c.k, c.H, c.D, data.kv(), c.start, got.data(), pool,
                            {ops::Activations::F32, GetParam()});
      data.oracle(c, want.data(), pool, /*bf16_products=*/false);
      // Each output is a convex combination of values (|v| < ~5 here); the two softmaxes differ
      // by a few ulps of each weight and the sums by gamma_n, so 1e-5 absolute is generous
      // while a wrong mask, head mapping or rescale is off by O(0.1).
      double worst = 0.0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
      EXPECT_LE(worst, 1e-5) << label(GetParam(), type, c) << " threads=" << threads;
    }
  }
}

// Activations::BF16: prefill rounds queries, keys, values and unnormalised probabilities to bf16
// (decoding stays fp32). Where every row's keys fit one key block the kernel's running max is the
// row's max, so the oracle rounds the very same values: what is left is the order of fp32 sums,
// which can move an exponential across a bf16 rounding boundary now and then (one weight off by
// 2^-8 of itself). Longer rows round exp(s - running max) and rescale it later, each weight
// within 2^-8 of the oracle's.
TEST_P(AttentionTest, Bf16ProductsMatchTheirOracle) {
  for (DType type : {DType::F32, DType::F16}) {
    ThreadPool pool(2);
    for (const Case& c : kCases) {
      const CaseData data(c, type, uint32_t(c.T * 17 + c.D * 3 + c.start));
      std::vector<float> got(data.q.size(), NAN), want(data.q.size()), exact(data.q.size());
      ops::causal_attention(data.q.data(), c.T, c.k, c.H, c.D, data.kv(), c.start, got.data(), pool,
                            {ops::Activations::BF16, GetParam()});
      const bool decoding = c.T * c.k <= ops::kDecodeMaxRows;
      data.oracle(c, want.data(), pool, /*bf16_products=*/!decoding);
      data.oracle(c, exact.data(), pool, /*bf16_products=*/false);
      double worst = 0.0, from_exact = 0.0, v_max = 0.0;
      for (size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
        from_exact = std::max(from_exact, std::fabs(double(got[i]) - exact[i]));
      }
      for (float v : data.v_rows.widened) v_max = std::max(v_max, std::fabs(double(v)));
      // Outputs are weighted means of values, so weights within 2^-8 of each other move them by
      // at most 2^-8 max |v|. Rounding changes them by ~1e-3 here (checked below), ten times the
      // single-block bound.
      const bool one_block = c.start + c.T <= kernels::cpu::kAttentionKeyBlock;
      const double bound = decoding ? 1e-5 : one_block ? 1e-4 : std::ldexp(v_max, -8) + 1e-5;
      const std::string what = label(GetParam(), type, c);
      EXPECT_LE(worst, bound) << what;
      if (!decoding) {
        EXPECT_GE(from_exact, 5e-4) << what << ": no sign of bf16 rounding";
      }
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
  ops::causal_attention(q.data(), T, k, H, D, keys.data(), values.data(), 0, got.data(), pool,
                        {ops::Activations::F32, GetParam()});
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
    ops::causal_attention(q.data(), 1, 1, 1, 8, kv, 0, out.data(), pool, {ops::Activations::F32, GetParam()});
    FAIL() << "BF16 cache rows were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("BF16"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, AttentionTest, testing::ValuesIn(kernels::cpu::runnable_isas()), test::isa_label);

}  // namespace
}  // namespace jetmoe
