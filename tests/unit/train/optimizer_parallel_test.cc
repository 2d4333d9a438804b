// The threaded, fused optimizer path the trainer runs (AdamW::step with a pool, gradient scales
// and bf16 copies; grad_global_norm) against the plain path it replaces: scale the buffers, clip,
// step, round to bf16 — bit for bit, for 1 and 2 threads and on every optimizer kernel path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/dtype.h"
#include "train/optimizer.h"

namespace jetmoe {
namespace {

using kernels::cpu::Isa;

// Sizes with partial vectors and more than one work run (runs are 32768 elements).
const std::vector<Shape> kShapes = {{3, 5}, {70000}, {1}, {17, 33}, {40000}};

std::vector<std::vector<float>> random_tensors(uint32_t seed, float scale) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<std::vector<float>> out;
  for (const Shape& s : kShapes) {
    out.emplace_back(size_t(shape_numel(s)));
    for (float& x : out.back()) x = dist(gen);
  }
  return out;
}

std::vector<OptimizedParam> params_of_shapes() {
  std::vector<OptimizedParam> params;
  for (size_t i = 0; i < kShapes.size(); ++i) params.push_back({"p" + std::to_string(i), kShapes[i], i % 2 == 0});
  return params;
}

template <class T>
std::vector<std::span<T>> spans(std::vector<std::vector<std::remove_const_t<T>>>& v) {
  return std::vector<std::span<T>>(v.begin(), v.end());
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(OptimizerParallel, FusedStepEqualsScalingTheBuffersThenStepping) {
  const float accum = 1.0f / 3.0f;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    auto plain_params = random_tensors(1, 1.0f), fused_params = plain_params;
    AdamW plain(params_of_shapes(), AdamWOptions{}), fused(params_of_shapes(), AdamWOptions{});
    for (int step = 0; step < 3; ++step) {
      auto grads = random_tensors(10 + step, 3.0f);
      // Plain: g *= 1/3, clip to 1, step, round the parameters to bf16.
      auto scaled = grads;
      for (auto& g : scaled)
        for (float& x : g) x *= accum;
      const double norm = clip_grad_global_norm(spans<float>(scaled), 1.0);
      plain.step(spans<float>(plain_params), spans<const float>(scaled), 0.01);
      std::vector<std::vector<uint16_t>> plain_bf16;
      for (const auto& p : plain_params) {
        plain_bf16.emplace_back(p.size());
        from_f32(DType::BF16, p.data(), plain_bf16.back().data(), p.size());
      }
      // Fused: the scales ride along; the norm comes from the unscaled buffers.
      AdamW::GradScales scales;
      scales.first = accum;
      const double fused_norm = grad_global_norm(spans<const float>(grads), pool, scales);
      EXPECT_EQ(fused_norm, norm) << "threads " << threads;
      ASSERT_GT(norm, 1.0) << "the test must exercise clipping";
      scales.second = grad_clip_factor(fused_norm, 1.0);
      std::vector<std::vector<uint16_t>> fused_bf16;
      for (const auto& p : fused_params) fused_bf16.emplace_back(p.size(), uint16_t(0));
      fused.step(spans<float>(fused_params), spans<const float>(grads), 0.01, pool, scales,
                 spans<uint16_t>(fused_bf16));
      for (size_t i = 0; i < kShapes.size(); ++i) {
        EXPECT_TRUE(same_bits(fused_params[i], plain_params[i])) << "tensor " << i << " step " << step;
        EXPECT_EQ(fused_bf16[i], plain_bf16[i]) << "tensor " << i << " step " << step;
      }
    }
    const auto plain_state = plain.state_tensors(), fused_state = fused.state_tensors();
    for (size_t i = 0; i < plain_state.size(); ++i)
      EXPECT_EQ(
          std::memcmp(plain_state[i].view.data, fused_state[i].view.data, size_t(plain_state[i].view.numel()) * 4), 0)
          << plain_state[i].name;
  }
}

TEST(OptimizerParallel, NormIsCloseToExactAndTheSameForAnyThreadCount) {
  const auto grads = random_tensors(5, 1.0f);
  double exact = 0.0;
  for (const auto& g : grads)
    for (float x : g) exact += double(x) * x;
  exact = std::sqrt(exact);
  std::vector<std::vector<float>> copy = grads;
  ThreadPool one(1), two(2);
  const double n1 = grad_global_norm(spans<const float>(copy), one),
               n2 = grad_global_norm(spans<const float>(copy), two);
  EXPECT_EQ(n1, n2);
  EXPECT_NEAR(n1, exact, 1e-12 * exact);        // double sums of ~1e5 squares: ~1e-16 relative each
  EXPECT_EQ(grad_clip_factor(NAN, 1.0), 1.0f);  // a non-finite norm is left to the caller
  EXPECT_EQ(grad_clip_factor(0.5, 1.0), 1.0f);
  EXPECT_EQ(grad_clip_factor(5.0, 0.0), 1.0f);  // max_norm 0: clipping off
  EXPECT_EQ(grad_clip_factor(5.0, 1.0), float(1.0 / (5.0 + 1e-6)));
}

TEST(OptimizerKernels, EveryPathGivesTheSameBits) {
  std::vector<Isa> paths = {Isa::Scalar};
  if (kernels::cpu::hardware_isa() >= Isa::Avx512) paths.push_back(Isa::Avx512);
  const optimizer_kernels::AdamWScalars s{0.9f, 0.95f, 0.1f, 0.05f, 0.003f, 0.2f, 1e-8f, 0.999f};
  const optimizer_kernels::GradScales scales{0.5f, 0.7f};
  for (int64_t n : {1, 15, 16, 17, 100, 1000}) {
    std::vector<std::vector<float>> p, m, v;
    std::vector<std::vector<uint16_t>> bf16;
    std::vector<double> sums;
    for (Isa isa : paths) {
      auto t = random_tensors(7, 1.0f);
      p.emplace_back(t[1].begin(), t[1].begin() + n);  // t[1] and t[4] hold tens of thousands
      m.emplace_back(t[1].begin() + n, t[1].begin() + 2 * n);
      v.emplace_back(size_t(n), 0.25f);
      bf16.emplace_back(size_t(n));
      const std::vector<float> g(t[4].begin(), t[4].begin() + n);
      optimizer_kernels::adamw_update(p.back().data(), m.back().data(), v.back().data(), g.data(), n, s, scales,
                                      bf16.back().data(), isa);
      sums.push_back(optimizer_kernels::sum_of_squares(g.data(), n, scales, isa));
    }
    for (size_t i = 1; i < paths.size(); ++i) {
      EXPECT_TRUE(same_bits(p[i], p[0])) << "n " << n;
      EXPECT_TRUE(same_bits(m[i], m[0])) << "n " << n;
      EXPECT_TRUE(same_bits(v[i], v[0])) << "n " << n;
      EXPECT_EQ(bf16[i], bf16[0]) << "n " << n;
      EXPECT_EQ(sums[i], sums[0]) << "n " << n;
    }
    for (int64_t j = 0; j < n; ++j) EXPECT_EQ(bf16[0][size_t(j)], f32_to_bf16(p[0][size_t(j)]));
  }
}

}  // namespace
}  // namespace jetmoe
