#include "kernels/cpu/machine_probe.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/cpu/kernel_table.h"

namespace jetmoe::kernels::cpu {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Best rate of `reps` runs in which every thread calls flops_fn(iters) at the same time.
double best_rate(ThreadPool& pool, double (*flops_fn)(int64_t), double seconds, int reps) {
  // Calibrate the iteration count on one thread so that a run lasts about `seconds`.
  int64_t iters = 1 << 14;
  for (;;) {
    const auto start = std::chrono::steady_clock::now();
    flops_fn(iters);
    const double took = seconds_since(start);
    if (took > seconds / 4 || iters > (int64_t(1) << 40)) {
      iters = std::max<int64_t>(1, int64_t(double(iters) * seconds / std::max(took, 1e-9)));
      break;
    }
    iters *= 4;
  }
  double best = 0.0;
  for (int r = 0; r < reps; ++r) {
    std::vector<double> flops(size_t(pool.num_threads()), 0.0);
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(pool.num_threads(), [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) flops[size_t(t)] = flops_fn(iters);
    });
    const double took = seconds_since(start);
    double total = 0.0;
    for (double f : flops) total += f;
    best = std::max(best, total / took);
  }
  return best;
}

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int reps, Isa isa) {
  const KernelTable& kt = kernel_table(isa);
  const int64_t n = int64_t(bytes / sizeof(float));
  // Written, so every page is backed by its own memory (untouched pages all map one zero page).
  // In the jetmoe binary it gets huge pages (core/huge_pages.h): the probe then reads 5-8% faster
  // than through 4 KiB pages, as mmapped weights are read.
  std::vector<float> buffer(static_cast<size_t>(n), 1.0f);
  const int parts = pool.num_threads();
  std::vector<float> sinks(static_cast<size_t>(parts));
  double best = 0.0;
  for (int r = 0; r <= reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(parts, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t lo = n * p / parts, hi = n * (p + 1) / parts;
        sinks[size_t(p)] = kt.read_sum(buffer.data() + lo, hi - lo);
      }
    });
    const double took = seconds_since(start);
    if (r > 0) best = std::max(best, double(n) * sizeof(float) / took);  // pass 0 warms up
  }
  volatile float keep = sinks[0];
  (void)keep;
  return best;
}

double measure_fma_peak(ThreadPool& pool, double seconds, int reps, Isa isa) {
  return best_rate(pool, kernel_table(isa).fma_flops, seconds, reps);
}

double measure_bf16_dot_peak(ThreadPool& pool, double seconds, int reps, Isa isa) {
  const KernelTable& kt = kernel_table(isa);
  return kt.bf16_dot_flops ? best_rate(pool, kt.bf16_dot_flops, seconds, reps) : 0.0;
}

}  // namespace jetmoe::kernels::cpu
