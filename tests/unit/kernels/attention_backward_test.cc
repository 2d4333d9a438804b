// ops::attention_backward against a float64 evaluation of the formulas of kernels/attention_backward.h
// on every ISA level: head sizes that fill whole vectors and odd ones, one to three slots per
// position, short and long sequences, strided rows (heads of a wider matrix), one and two threads.
#include "kernels/attention_backward.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_util.h"

namespace jetmoe {
namespace {

using test::Isa;

struct Case {
  int64_t positions, slots, head_dim;
};
// Query rows in blocks of 8 (AVX-512) or 4 with every count from 0 to 7 left over (1, 10, 74,
// 70, 99, 260, 80, 9, 13 and 23 rows); head dims of one and several register chunks (128 is
// JetMoE-8B's), whole vectors or not.
const Case kCases[] = {{1, 1, 64},   {5, 2, 64},    {37, 2, 20},  {70, 1, 32}, {33, 3, 7},
                       {130, 2, 64}, {40, 2, 128}, {9, 1, 80},  {13, 1, 24}, {23, 1, 16}};

// Gradients in float64 straight from the definitions (the oracle).
struct Reference {
  std::vector<double> dq, dkeys, dvalues;
};

Reference reference(const std::vector<float>& q, const std::vector<float>& dout, const std::vector<float>& keys,
                    const std::vector<float>& values, const Case& c) {
  const int64_t D = c.head_dim, T = c.positions, R = T * c.slots;
  const double scale = 1.0 / std::sqrt(double(D));
  Reference ref{std::vector<double>(size_t(R * D)), std::vector<double>(size_t(T * D)),
                std::vector<double>(size_t(T * D))};
  for (int64_t a = 0; a < R; ++a) {
    const int64_t n = a / c.slots + 1;
    std::vector<double> p(static_cast<size_t>(n)), dp(static_cast<size_t>(n));
    double mx = -INFINITY, sum = 0.0, dot = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t i = 0; i < D; ++i) s += double(q[size_t(a * D + i)]) * keys[size_t(j * D + i)];
      p[size_t(j)] = s * scale;
      mx = std::max(mx, p[size_t(j)]);
    }
    for (double& x : p) sum += (x = std::exp(x - mx));
    for (int64_t j = 0; j < n; ++j) {
      p[size_t(j)] /= sum;
      for (int64_t i = 0; i < D; ++i) dp[size_t(j)] += double(dout[size_t(a * D + i)]) * values[size_t(j * D + i)];
      dot += p[size_t(j)] * dp[size_t(j)];
    }
    for (int64_t j = 0; j < n; ++j) {
      const double ds = p[size_t(j)] * (dp[size_t(j)] - dot) * scale;
      for (int64_t i = 0; i < D; ++i) {
        ref.dq[size_t(a * D + i)] += ds * keys[size_t(j * D + i)];
        ref.dkeys[size_t(j * D + i)] += ds * q[size_t(a * D + i)];
        ref.dvalues[size_t(j * D + i)] += p[size_t(j)] * dout[size_t(a * D + i)];
      }
    }
  }
  return ref;
}

// Reads column block `col` of width D from rows `stride` apart.
std::vector<float> column_block(const std::vector<float>& m, int64_t rows, int64_t stride, int64_t col, int64_t D) {
  std::vector<float> out(size_t(rows * D));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < D; ++i) out[size_t(r * D + i)] = m[size_t(r * stride + col + i)];
  return out;
}

// The kernel's sums are fp32 (over D and over up to T positions) and its exp is within a few
// ulps: errors are ~1e-6 of the largest entry; 2e-5 leaves room and still fails any wrong term.
void expect_near_reference(const std::vector<float>& got, const std::vector<double>& want, const std::string& what) {
  double scale = 0.0;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 2e-5 * scale + 1e-30) << what << " at " << i;
}

class AttentionBackwardTest : public testing::TestWithParam<Isa> {};

TEST_P(AttentionBackwardTest, MatchesFloat64Formulas) {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const Case& c : kCases) {
      // Two heads side by side in every matrix (head 1 at column D), as the model lays them out.
      const int64_t D = c.head_dim, T = c.positions, R = T * c.slots, W = 2 * D;
      const auto q = test::random_floats(size_t(R * W), 1), dout = test::random_floats(size_t(R * W), 2);
      const auto keys = test::random_floats(size_t(T * W), 3), values = test::random_floats(size_t(T * W), 4);
      std::vector<float> dq(size_t(R * W), 9.0f), dkv(size_t(T * 2 * W), 9.0f);  // dkv rows: [dK | dV]
      std::vector<ops::AttentionBackwardHead> heads;
      for (int64_t j = 0; j < 2; ++j) {
        ops::AttentionBackwardHead h;
        h.q = q.data() + j * D, h.q_stride = W;
        h.dout = dout.data() + j * D, h.dout_stride = W;
        h.keys = keys.data() + j * D, h.values = values.data() + j * D, h.kv_stride = W;
        h.dq = dq.data() + j * D, h.dq_stride = W;
        h.dkeys = dkv.data() + j * D, h.dvalues = dkv.data() + W + j * D, h.dkv_stride = 2 * W;
        h.rows = R, h.slots = c.slots, h.positions = T, h.head_dim = D;
        heads.push_back(h);
      }
      ops::attention_backward(heads, pool, GetParam());
      for (int64_t j = 0; j < 2; ++j) {
        const std::string what = "T " + std::to_string(T) + " slots " + std::to_string(c.slots) + " D " +
                                 std::to_string(D) + " head " + std::to_string(j) + " threads " +
                                 std::to_string(threads);
        const Reference ref = reference(column_block(q, R, W, j * D, D), column_block(dout, R, W, j * D, D),
                                        column_block(keys, T, W, j * D, D), column_block(values, T, W, j * D, D), c);
        expect_near_reference(column_block(dq, R, W, j * D, D), ref.dq, what + " dq");
        expect_near_reference(column_block(dkv, T, 2 * W, j * D, D), ref.dkeys, what + " dkeys");
        expect_near_reference(column_block(dkv, T, 2 * W, W + j * D, D), ref.dvalues, what + " dvalues");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, AttentionBackwardTest, testing::ValuesIn(kernels::cpu::runnable_isas()),
                         test::isa_label);

}  // namespace
}  // namespace jetmoe
