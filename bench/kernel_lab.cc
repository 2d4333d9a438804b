// Kernel lab: times single kernels of ops.h against the machine probes, outside the model.
// Build and run with bench/kernel_lab.sh (links the static libraries of a build directory).
//   kernel_lab [threads]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/parallel.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/machine_probe.h"
#include "kernels/ops.h"

using namespace jetmoe;

namespace {

template <class Fn>
double best_seconds(int reps, const Fn& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

std::vector<uint16_t> random_bf16(size_t n) {
  std::mt19937 gen(1);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<uint16_t> out(n);
  for (uint16_t& v : out) v = f32_to_bf16(dist(gen));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  ThreadPool pool(threads);
  std::printf("threads %d, isa %s\n", threads, std::string(kernels::cpu::isa_name(kernels::cpu::best_isa())).c_str());
  std::printf("read bandwidth  %.1f GB/s\n", kernels::cpu::measure_read_bandwidth(pool, size_t(512) << 20, 5) / 1e9);
  std::printf("fp32 FMA peak   %.0f GFLOP/s\n", kernels::cpu::measure_fma_peak(pool, 0.05, 5) / 1e9);
  std::printf("bf16 dot peak   %.0f GFLOP/s\n", kernels::cpu::measure_bf16_dot_peak(pool, 0.05, 5) / 1e9);

  // Decoding: 1 .. 4 rows against the 8B shape's expert matrices, several experts stacked so
  // the weights come from DRAM (92 MB and 46 MB, beyond the 32 MB L3).
  for (const auto& [out, in] : {std::pair<int64_t, int64_t>{4 * 2048, 5632}, {11264, 2048}}) {
    const std::vector<uint16_t> w = random_bf16(size_t(out * in));
    const TensorView W{DType::BF16, {out, in}, w.data()};
    for (int64_t T : {1, 2, 4}) {
      std::vector<float> x(size_t(T * in), 0.5f), y(size_t(T * out));
      const double s = best_seconds(5, [&] { ops::matmul_xwT(x.data(), in, T, W, y.data(), out, pool); });
      std::printf("gemv %lldx%lld T=%lld  %.1f GB/s of weights\n", (long long)out, (long long)in, (long long)T,
                  double(w.size() * 2) / s / 1e9);
    }
  }
  // Prefill: an expert of the 8B shape (11264 x 2048) for 16 .. 512 tokens.
  {
    const int64_t out = 11264, in = 2048;
    const std::vector<uint16_t> w = random_bf16(size_t(out * in));
    const TensorView W{DType::BF16, {out, in}, w.data()};
    for (int64_t T : {16, 64, 128, 512}) {
      std::vector<float> x(size_t(T * in), 0.5f), y(size_t(T * out));
      for (auto act : {ops::Activations::F32, ops::Activations::BF16}) {
        const double s = best_seconds(3, [&] { ops::matmul_xwT(x.data(), in, T, W, y.data(), out, pool, {act}); });
        std::printf("gemm T=%-4lld %s  %.0f GFLOP/s\n", (long long)T, act == ops::Activations::F32 ? "f32 " : "bf16",
                    2.0 * double(T * out * in) / s / 1e9);
      }
    }
  }
  // Attention: prefill of 512 tokens, 16 heads of 128, top-2.
  {
    const int64_t T = 512, k = 2, H = 16, D = 128;
    std::vector<float> q(size_t(T * k * H * D), 0.01f), kv(size_t(T * H * D), 0.02f), out(q.size());
    const double s = best_seconds(3, [&] {
      ops::causal_attention(q.data(), T, k, H, D, kv.data(), kv.data(), 0, out.data(), pool);
    });
    const double flops = 4.0 * double(k * H * D) * double(T) * double(T + 1) / 2.0;
    std::printf("attention T=%lld  %.0f GFLOP/s\n", (long long)T, flops / s / 1e9);
  }
  return 0;
}
