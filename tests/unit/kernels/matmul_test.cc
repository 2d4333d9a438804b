// ops::matmul_xwT and ops::matmul_xwT_grouped against the scalar oracle kernels::matmul_xwT on
// every ISA level of this machine, every weight dtype, odd sizes (tails of every vector width,
// more inputs than one packed panel holds), row counts on both sides of the gemv/gemm switch,
// misaligned pointers and strides wider than the rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/kernel_table.h"
#include "kernels/ops.h"
#include "kernels/ref/ops.h"
#include "kernel_test_util.h"

namespace jetmoe {
namespace {

using test::Isa;

// A [out, in] weight of dtype `dtype` one element past an aligned allocation.
struct Weight {
  std::vector<uint8_t> storage;
  TensorView view;
  Weight(DType dtype, int64_t out, int64_t in, uint32_t seed) {
    const test::StoredValues v = test::store_as(dtype, test::random_floats(size_t(out * in), seed));
    const size_t elem = dtype_size(dtype);
    storage.resize(v.bytes.size() + elem);
    std::copy(v.bytes.begin(), v.bytes.end(), storage.begin() + long(elem));
    view = TensorView{dtype, {out, in}, storage.data() + elem};
  }
};

// Rows of x rounded as ops rounds them for `act` (only prefill-sized products of BF16 weights).
std::vector<float> oracle_input(const std::vector<float>& x, DType dtype, int64_t T, ops::Activations act) {
  if (act != ops::Activations::BF16 || dtype != DType::BF16 || T <= kernels::cpu::kGemvMaxRows) return x;
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(x[i]));
  return r;
}

// Compares y [T, out] (rows y_stride apart) with the oracle on x_used; both are fp32 sums of `in`
// products, so they differ by at most 2 gamma_in sum_i |x_i w_i|. Columns past `out` must be
// untouched (NaN sentinels).
void expect_matches_oracle(const float* y, int64_t y_stride, const std::vector<float>& x_used, int64_t x_stride,
                           int64_t T, const TensorView& W, ThreadPool& pool, const std::string& what) {
  const int64_t out = W.shape[0], in = W.shape[1];
  std::vector<float> want(size_t(T * out));
  kernels::matmul_xwT(x_used.data(), x_stride, T, W, want.data(), out, pool);
  std::vector<float> w(static_cast<size_t>(in));
  int failures = 0;
  for (int64_t o = 0; o < out; ++o) {
    kernels::load_row(W, o, w.data());
    for (int64_t t = 0; t < T; ++t) {
      double sum_abs = 0.0;
      for (int64_t i = 0; i < in; ++i) sum_abs += std::fabs(double(x_used[size_t(t * x_stride + i)]) * w[size_t(i)]);
      const double tol = 2.0 * test::gamma_n(in + 1) * sum_abs;
      const double got = y[t * y_stride + o], ref = want[size_t(t * out + o)];
      if (!(std::fabs(got - ref) <= tol) && ++failures <= 3)
        ADD_FAILURE() << what << ": y[" << t << ", " << o << "] = " << got << ", oracle " << ref << ", tolerance "
                      << tol;
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = out; c < y_stride; ++c)
        if (!std::isnan(y[t * y_stride + c]) && ++failures <= 3) ADD_FAILURE() << what << ": wrote past column " << out;
  }
  EXPECT_EQ(failures, 0) << what;
}

class MatmulTest : public testing::TestWithParam<Isa> {};

void check_one(Isa isa, DType dtype, ops::Activations act, int64_t T, int64_t in, int64_t out, ThreadPool& pool) {
  const uint32_t seed = uint32_t(T * 7919 + in * 104729 + out * 31 + int(dtype));
  const Weight W(dtype, out, in, seed);
  const int64_t x_stride = in + 3, y_stride = out + 2;
  // x one float past the start of its buffer: no vector alignment.
  std::vector<float> x_buffer = test::random_floats(size_t(T * x_stride + 1), seed + 1);
  const std::vector<float> x(x_buffer.begin() + 1, x_buffer.end());
  std::vector<float> y_buffer(size_t(T * y_stride + 1), std::numeric_limits<float>::quiet_NaN());
  ops::matmul_xwT(x_buffer.data() + 1, x_stride, T, W.view, y_buffer.data() + 1, y_stride, pool, {act, isa});
  const std::string what = str_cat(kernels::cpu::isa_name(isa), " ", dtype_name(dtype),
                                   act == ops::Activations::BF16 ? " bf16-activations" : "", " T=", T, " in=", in,
                                   " out=", out);
  expect_matches_oracle(y_buffer.data() + 1, y_stride, oracle_input(x, dtype, T, act), x_stride, T, W.view, pool, what);
}

TEST_P(MatmulTest, MatchesOracleOverOddShapes) {
  ThreadPool pool(2);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (int64_t T : {1, 2, 3, 4, 5, 13, 29})
      for (int64_t in : {1, 7, 16, 33, 300})
        for (int64_t out : {1, 3, 33, 130}) check_one(GetParam(), dtype, ops::Activations::F32, T, in, out, pool);
}

TEST_P(MatmulTest, DecodingRowsTooWideForL1TakeTheTiledGemv) {
  // 2-4 activation rows of 2101 floats (over 16 KB together) switch the gemv from one W row at a
  // time to tiles of 4 W rows (matmul-inl.h); 5 and 33 outputs leave a remainder of rows.
  ThreadPool pool(2);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (int64_t T : {2, 3, 4})
      for (int64_t out : {5, 33}) check_one(GetParam(), dtype, ops::Activations::F32, T, 2101, out, pool);
}

TEST_P(MatmulTest, Bf16ActivationsRoundLikeTheOracleOnEveryLevel) {
  ThreadPool pool(2);
  // Token tiles (AVX512_BF16): T <= 16 the 16-token tile; T = 50 a full panel of 32 and one of 18
  // (the 32-token tile); T = 33, 40, 48, 70 and 100 end on a panel with the half panel after it
  // (the 48-token tile of 8 rows; out = 3, 33 and 130 leave 3, 1 and 2 rows past its last full tile); T = 81 ends on 17.
  // out = 130: the last 128-column tile holds 2 outputs. Odd `in` takes the fp32 fallback; 530 =
  // 265 pairs, not a multiple of 16.
  for (int64_t T : {1, 4, 5, 13, 16, 17, 33, 40, 48, 50, 70, 81, 100})
    for (int64_t in : {1, 2, 7, 64, 530})
      for (int64_t out : {3, 33, 130}) check_one(GetParam(), DType::BF16, ops::Activations::BF16, T, in, out, pool);
  // Other dtypes ignore the option.
  check_one(GetParam(), DType::F32, ops::Activations::BF16, 13, 33, 33, pool);
}

TEST_P(MatmulTest, ManyRowsAndOneThread) {
  ThreadPool pool(1);
  check_one(GetParam(), DType::BF16, ops::Activations::F32, 100, 70, 200, pool);
}

TEST_P(MatmulTest, GroupedJobsOfUnevenSizesMatchTheOracleOneByOne) {
  const int64_t E = 5, out = 45, in = 37;
  const Weight stacked(DType::BF16, E * out, in, 77);  // viewed as [E, out, in]
  const TensorView experts{DType::BF16, {E, out, in}, stacked.view.data};
  const int64_t rows[E] = {0, 1, 4, 5, 37};
  std::vector<std::vector<float>> xs, ys;
  std::vector<ops::MatmulJob> jobs;
  for (int64_t e = 0; e < E; ++e) {
    xs.push_back(test::random_floats(size_t(rows[e] * in), uint32_t(100 + e)));
    ys.emplace_back(size_t(rows[e] * (out + 1)), std::numeric_limits<float>::quiet_NaN());
  }
  for (int64_t e = 0; e < E; ++e)
    jobs.push_back({xs[size_t(e)].data(), in, rows[e], experts.slice0(e), ys[size_t(e)].data(), out + 1});
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (auto& y : ys) std::fill(y.begin(), y.end(), std::numeric_limits<float>::quiet_NaN());
    ops::matmul_xwT_grouped(jobs, pool, {ops::Activations::F32, GetParam()});
    for (int64_t e = 0; e < E; ++e)
      expect_matches_oracle(ys[size_t(e)].data(), out + 1, xs[size_t(e)], in, rows[e], experts.slice0(e), pool,
                            str_cat("expert ", e, " threads ", threads));
  }
}

TEST_P(MatmulTest, DecodingCallsOfMegabytesAreCutIntoTilesThatCoverEveryRow) {
  // 2 x 1.2 MB of F32 weights: tiles of ~150 KB (36 rows), the last one of each job shorter.
  const int64_t E = 2, out = 301, in = 1000;
  const Weight stacked(DType::F32, E * out, in, 91);
  const TensorView experts{DType::F32, {E, out, in}, stacked.view.data};
  for (int64_t T : {1, 3}) {
    const std::vector<float> x = test::random_floats(size_t(E * T * in), uint32_t(T));
    std::vector<float> y(size_t(E * T * out), std::numeric_limits<float>::quiet_NaN());
    std::vector<ops::MatmulJob> jobs;
    for (int64_t e = 0; e < E; ++e)
      jobs.push_back({x.data() + e * T * in, in, T, experts.slice0(e), y.data() + e * T * out, out});
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      std::fill(y.begin(), y.end(), std::numeric_limits<float>::quiet_NaN());
      ops::matmul_xwT_grouped(jobs, pool, {ops::Activations::F32, GetParam()});
      for (int64_t e = 0; e < E; ++e) {
        const std::vector<float> x_e(x.begin() + e * T * in, x.begin() + (e + 1) * T * in);
        expect_matches_oracle(y.data() + e * T * out, out, x_e, in, T, experts.slice0(e), pool,
                              str_cat("T=", T, " expert ", e, " threads ", threads));
      }
    }
  }
}

TEST_P(MatmulTest, ZeroRowsWriteNothing) {
  ThreadPool pool(2);
  const Weight W(DType::F32, 4, 4, 1);
  float y = 123.0f;
  ops::matmul_xwT(nullptr, 4, 0, W.view, &y, 4, pool, {ops::Activations::F32, GetParam()});
  EXPECT_EQ(y, 123.0f);
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, MatmulTest, testing::ValuesIn(kernels::cpu::runnable_isas()), test::isa_label);

}  // namespace
}  // namespace jetmoe
