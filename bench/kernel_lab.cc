// Kernel lab: times single kernels of ops.h against the machine probes, outside the model.
// Build and run with bench/kernel_lab.sh (links the static libraries of a build directory).
//   kernel_lab [threads]
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation, which its own
// -Wmaybe-uninitialized then reports at every inlined use (see kernels/cpu/isa_avx512.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/parallel.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/attention_backward.h"
#include "kernels/backward_products.h"
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

// A [rows, cols] quantized weight: 64 rows quantized from normal values, repeated (quantizing
// hundreds of MB value by value would take longer than the measurement).
std::vector<uint8_t> quantized_weight(DType t, int64_t rows, int64_t cols) {
  const int64_t pattern_rows = 64;
  std::mt19937 gen(1);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> values(size_t(pattern_rows * cols));
  for (float& v : values) v = dist(gen);
  const size_t row_bytes = dtype_bytes(t, cols);
  std::vector<uint8_t> pattern(row_bytes * pattern_rows), out(row_bytes * size_t(rows));
  from_f32(t, values.data(), pattern.data(), values.size());
  for (int64_t r = 0; r < rows; r += pattern_rows)
    std::memcpy(out.data() + size_t(r) * row_bytes, pattern.data(),
                size_t(std::min(pattern_rows, rows - r)) * row_bytes);
  return out;
}

// Version 0 of the quantized decoding product, kept for comparison: dequantize each weight block
// to fp32 in registers and multiply with the fp32 activations (no activation quantization), one
// row at a time. AVX-512 only; W is Q8_0 or Q4_0, x one row.
__attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c"))) void gemv_dequant_f32(const float* x,
                                                                                   const TensorView& W, int64_t o0,
                                                                                   int64_t o1, float* y) {
  const int64_t cols = W.shape[1], blocks = cols / 32;
  const size_t block_bytes = dtype_block_bytes(W.dtype), row_bytes = dtype_bytes(W.dtype, cols);
  const bool q8 = W.dtype == DType::Q8_0;
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + size_t(o) * row_bytes;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* block = row + size_t(b) * block_bytes;
      uint16_t h;
      std::memcpy(&h, block, 2);
      __m128i lo, hi;  // values 0..15 and 16..31 as bytes
      if (q8) {
        lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
        hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 18));
      } else {
        const __m128i p = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
        const __m128i m = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
        lo = _mm_sub_epi8(_mm_and_si128(p, m), eight);
        hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(p, 4), m), eight);
      }
      const __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi));
      const __m512 dot =
          _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + b * 32 + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(x + b * 32)));
      if (b % 2 == 0) acc0 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(h)), dot, acc0);
      else acc1 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(h)), dot, acc1);
    }
    y[o] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  }
}

// The int8 dot-product peak the quantized GEMMs aim at: vpdpbusd (64 byte multiply-adds per
// instruction) on 16 independent chains per thread; operations = 2 per multiply-add.
__attribute__((target("avx512f,avx512vnni"))) double int8_dot_ops(int64_t iters) {
  constexpr int kChains = 16;
  __m512i acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_epi32(j);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
  __m512i sum = _mm512_setzero_si512();
  for (int j = 0; j < kChains; ++j) sum = _mm512_add_epi32(sum, acc[j]);
  volatile int sink = _mm512_reduce_add_epi32(sum);
  (void)sink;
  return 2.0 * 64 * kChains * double(iters);
}

// Best of 5 runs of int8_dot_ops on every thread at once (0 without AVX512_VNNI).
double measure_int8_dot_peak(ThreadPool& pool) {
  if (kernels::cpu::hardware_isa() < kernels::cpu::Isa::Avx512Bf16) return 0.0;
  const int64_t iters = 1 << 22;
  double best = 0.0;
  for (int r = 0; r < 5; ++r) {
    std::vector<double> ops(size_t(pool.num_threads()), 0.0);
    const double s = best_seconds(1, [&] {
      pool.parallel_for(pool.num_threads(), [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) ops[size_t(t)] = int8_dot_ops(iters);
      });
    });
    double total = 0.0;
    for (double o : ops) total += o;
    best = std::max(best, total / s);
  }
  return best;
}

// Seconds of the best of `reps` runs of fn, each run right after a pass of the read-bandwidth
// probe over `probe_buffer`; *probe_seconds gets the best probe pass. On a shared machine the
// bandwidth left to us changes from second to second, so only interleaved runs compare.
template <class Fn>
double best_seconds_beside_probe(ThreadPool& pool, const std::vector<float>& probe_buffer, int reps,
                                 double* probe_seconds, const Fn& fn) {
  const auto& kt = kernels::cpu::kernel_table(kernels::cpu::best_isa());
  const int parts = pool.num_threads();
  const int64_t n = int64_t(probe_buffer.size());
  std::vector<float> sinks(static_cast<size_t>(parts));
  double best = 1e30, probe = 1e30;
  for (int r = 0; r < reps; ++r) {
    probe = std::min(probe, best_seconds(1, [&] {
      pool.parallel_for(parts, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p)
          sinks[size_t(p)] = kt.read_sum(probe_buffer.data() + n * p / parts, n * (p + 1) / parts - n * p / parts);
      });
    }));
    best = std::min(best, best_seconds(1, fn));
  }
  *probe_seconds = probe;
  return best;
}

// Quantized weights: decoding products (GB/s of weights against the read bandwidth, measured
// interleaved) for the 8B expert shapes, 16 experts stacked so the weights come from DRAM (208 -
// 392 MB: with 8, part of them stayed in the 32 MB L3 between runs), and
// prefill products of one expert (GOP/s against the bf16 and the int8 dot-product peaks).
void quantized_products(ThreadPool& pool, double bf16_peak, double int8_peak) {
  const std::vector<float> probe_buffer(size_t(384) << 18, 1.0f);  // 384 MiB, written: own pages
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    for (const auto& [out, in] : {std::pair<int64_t, int64_t>{16 * 11264, 2048}, {16 * 2048, 5632}}) {
      const std::vector<uint8_t> w = quantized_weight(t, out, in);
      const TensorView W{t, {out, in}, w.data()};
      for (int64_t T : {1, 2, 4}) {
        std::vector<float> x(size_t(T * in), 0.5f), y(size_t(T * out));
        double probe = 0.0;
        const double s = best_seconds_beside_probe(pool, probe_buffer, 10, &probe, [&] {
          ops::matmul_xwT(x.data(), in, T, W, y.data(), out, pool);
        });
        const double gbs = double(w.size()) / s / 1e9, bandwidth = double(probe_buffer.size() * 4) / probe;
        std::printf("gemv %s %lldx%lld T=%lld  %.1f GB/s of weights (%.0f%% of the read bandwidth beside it, "
                    "%.1f GB/s)\n",
                    std::string(dtype_name(t)).c_str(), (long long)out, (long long)in, (long long)T, gbs,
                    100.0 * gbs * 1e9 / bandwidth, bandwidth / 1e9);
      }
      if (kernels::cpu::hardware_isa() >= kernels::cpu::Isa::Avx512 && (t == DType::Q8_0 || t == DType::Q4_0)) {
        std::vector<float> x(static_cast<size_t>(in), 0.5f), y(static_cast<size_t>(out));
        const int64_t step = 64;
        double probe = 0.0;
        const double s = best_seconds_beside_probe(pool, probe_buffer, 10, &probe, [&] {
          pool.parallel_for((out + step - 1) / step, [&](int64_t b, int64_t e) {
            gemv_dequant_f32(x.data(), W, b * step, std::min(out, e * step), y.data());
          });
        });
        const double gbs = double(w.size()) / s / 1e9, bandwidth = double(probe_buffer.size() * 4) / probe;
        std::printf("  v0 (dequantize to fp32 in registers) T=1  %.1f GB/s (%.0f%%)\n", gbs,
                    100.0 * gbs * 1e9 / bandwidth);
      }
    }
    const int64_t out = 11264, in = 2048;
    const std::vector<uint8_t> w = quantized_weight(t, out, in);
    const TensorView W{t, {out, in}, w.data()};
    for (int64_t T : {16, 64, 100, 128, 140, 512}) {  // 100 and 140: an expert's share is anything
      std::vector<float> x(size_t(T * in)), y(size_t(T * out));
      std::mt19937 gen(2);
      std::normal_distribution<float> dist(0.0f, 1.0f);
      for (float& v : x) v = dist(gen);
      const double s = best_seconds(3, [&] { ops::matmul_xwT(x.data(), in, T, W, y.data(), out, pool); });
      const double gops = 2.0 * double(T * out * in) / s / 1e9;
      // A peak this level or machine lacks (JETMOE_ISA=avx512, no VNNI) is 0: no share of it.
      const auto share = [&](double peak) {
        char text[16] = "-";
        if (peak > 0.0) std::snprintf(text, sizeof text, "%.0f%%", 100.0 * gops * 1e9 / peak);
        return std::string(text);
      };
      std::printf("gemm %s T=%-4lld  %.0f GOP/s (%s of the bf16 peak, %s of the int8 peak)\n",
                  std::string(dtype_name(t)).c_str(), (long long)T, gops, share(bf16_peak).c_str(),
                  share(int8_peak).c_str());
    }
  }
}

// A training step's products on one expert's tokens, as bf16 training runs them: the forward
// (y = x W^T), the input gradient (dx = dy W) and the weight gradient (dW += dy^T x). The same
// multiply-adds each, so their rates compare the three kernels directly.
void training_products(ThreadPool& pool, double bf16_peak) {
  const ops::MatmulOptions bf16{ops::Activations::BF16};
  // Experts of the mid model and of JetMoE-8B, then the mid model's head over a chunk of tokens.
  for (const auto& [out, in] : {std::pair<int64_t, int64_t>{5632, 1024}, {1024, 2816}, {11264, 2048}, {32000, 1024}}) {
    const std::vector<uint16_t> w = random_bf16(size_t(out * in));
    const TensorView W{DType::BF16, {out, in}, w.data()};
    for (int64_t T : out == 32000 ? std::vector<int64_t>{1024} : std::vector<int64_t>{128, 512}) {
      std::mt19937 gen(3);
      std::normal_distribution<float> dist(0.0f, 1.0f);
      std::vector<float> x(size_t(T * in)), dy(size_t(T * out)), y(size_t(T * out)), dx(size_t(T * in));
      std::vector<float> dW(size_t(out * in), 0.0f);
      for (float& v : x) v = dist(gen);
      for (float& v : dy) v = dist(gen);
      const double flops = 2.0 * double(T * out * in);
      const auto rate = [&](const char* what, double seconds) {
        std::printf("train %-13s %5lldx%-5lld T=%-4lld %5.0f GFLOP/s (%.0f%% of the bf16 peak)\n", what,
                    (long long)out, (long long)in, (long long)T, flops / seconds / 1e9,
                    100.0 * flops / seconds / std::max(bf16_peak, 1.0));
      };
      rate("forward", best_seconds(3, [&] { ops::matmul_xwT(x.data(), in, T, W, y.data(), out, pool, bf16); }));
      rate("input grad", best_seconds(3, [&] { ops::matmul_backward_input(dy.data(), T, W, dx.data(), pool, bf16); }));
      rate("weight grad", best_seconds(3, [&] {
        ops::matmul_backward_weight(dy.data(), x.data(), T, out, in, dW.data(), pool, bf16);
      }));
    }
  }
}

// Prefill attention of 512 tokens, top-2, over 16 KV heads of 64 (the mid model) and of 128
// (JetMoE-8B), after 0 and 2048 cached positions, in GFLOP/s of its causal products (QK^T and PV)
// and as a share of the fp32 and bf16 peaks, on an F32 and an F16 cache, with fp32 and bf16
// products (ops::Activations).
void prefill_attention_rates(ThreadPool& pool, double fma_peak, double bf16_peak) {
  for (const DType type : {DType::F32, DType::F16})
    for (const int64_t D : {64, 128})
      for (const int64_t start : {0, 2048})
        for (const ops::Activations act : {ops::Activations::F32, ops::Activations::BF16}) {
          const int64_t T = 512, k = 2, H = 16, positions = start + T;
          std::vector<float> q(size_t(T * k * H * D), 0.01f), out(q.size());
          std::vector<std::byte> kv(size_t(positions * H * D) * dtype_size(type));
          std::vector<float> row(size_t(H * D), 0.02f);
          for (int64_t p = 0; p < positions; ++p)
            ops::store_kv_row(row.data(), kv.data() + size_t(p * H * D) * dtype_size(type), type, H * D);
          const ops::KvRows rows{kv.data(), kv.data(), type};
          const double s = best_seconds(
              3, [&] { ops::causal_attention(q.data(), T, k, H, D, rows, start, out.data(), pool, {act}); });
          const double flops = 4.0 * double(k * H * D) * (double(T * start) + double(T) * double(T + 1) / 2.0) / s;
          std::printf("attention T=%lld start=%-4lld H=%lld D=%-3lld k=%lld kv %s %s  %.0f GFLOP/s (%.0f%% of the fp32 "
                      "peak, %.0f%% of the bf16 peak)\n",
                      (long long)T, (long long)start, (long long)H, (long long)D, (long long)k,
                      std::string(dtype_name(type)).c_str(), act == ops::Activations::F32 ? "f32 " : "bf16",
                      flops / 1e9, 100.0 * flops / std::max(fma_peak, 1.0), 100.0 * flops / std::max(bf16_peak, 1.0));
        }
  // Decoding one token (top-2) over a cache of 4096 positions per layer, 8 layers' caches in turn
  // so that they come from DRAM: GB/s of K and V read, and positions per microsecond.
  for (const DType type : {DType::F32, DType::F16})
    for (const int64_t D : {64, 128}) {
      const int64_t positions = 4096, k = 2, H = 16, layers = 8;
      const size_t layer_bytes = size_t(positions * H * D) * dtype_size(type);
      std::vector<float> q(size_t(k * H * D), 0.01f), out(q.size()), row(size_t(H * D), 0.02f);
      std::vector<std::byte> keys(size_t(layers) * layer_bytes), values(keys.size());
      for (int64_t p = 0; p < layers * positions; ++p) {
        ops::store_kv_row(row.data(), keys.data() + size_t(p * H * D) * dtype_size(type), type, H * D);
        ops::store_kv_row(row.data(), values.data() + size_t(p * H * D) * dtype_size(type), type, H * D);
      }
      int64_t layer = 0;
      const double s = best_seconds(5, [&] {
        for (int64_t i = 0; i < layers; ++i, layer = (layer + 1) % layers) {
          const ops::KvRows rows{keys.data() + layer * layer_bytes, values.data() + layer * layer_bytes, type};
          ops::causal_attention(q.data(), 1, k, H, D, rows, positions - 1, out.data(), pool);
        }
      });
      std::printf("decode attention %lld positions H=%lld D=%lld k=%lld kv %s  %.1f GB/s of K and V, %.1f positions/us\n",
                  (long long)positions, (long long)H, (long long)D, (long long)k, std::string(dtype_name(type)).c_str(),
                  double(layers * 2 * layer_bytes) / s / 1e9, double(layers * positions) / s / 1e6);
    }
}

// The attention backward of one sequence of a MoA layer: H KV heads of D, k query rows per
// token (spec's shared-KV mapping), T tokens; scores are recomputed. Its multiply-adds per
// (query row, visible position): scores, dP, dq, dK and dV, 2 D each.
void attention_backward_rate(ThreadPool& pool, int64_t T, int64_t H, int64_t D, int64_t k) {
  const int64_t HD = H * D;
  std::mt19937 gen(4);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> q(size_t(T * k * HD)), dout(q.size()), kv(size_t(T * 2 * HD)), dq(q.size()), dkv(kv.size());
  for (std::vector<float>* v : {&q, &dout, &kv})
    for (float& x : *v) x = dist(gen);
  std::vector<ops::AttentionBackwardHead> heads;
  for (int64_t j = 0; j < H; ++j)
    heads.push_back({.q = q.data() + j * D, .q_stride = HD, .dout = dout.data() + j * D, .dout_stride = HD,
                     .keys = kv.data() + j * D, .values = kv.data() + HD + j * D, .kv_stride = 2 * HD,
                     .dq = dq.data() + j * D, .dq_stride = HD, .dkeys = dkv.data() + j * D,
                     .dvalues = dkv.data() + HD + j * D, .dkv_stride = 2 * HD, .rows = T * k, .slots = k,
                     .positions = T, .head_dim = D});
  const double s = best_seconds(3, [&] { ops::attention_backward(heads, pool); });
  const double flops = 10.0 * double(D) * double(H) * double(k) * double(T) * double(T + 1) / 2.0;
  std::printf("train attention backward T=%lld H=%lld D=%lld k=%lld  %.0f GFLOP/s\n", (long long)T, (long long)H,
              (long long)D, (long long)k, flops / s / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  ThreadPool pool(threads);
  std::printf("threads %d, isa %s\n", threads, std::string(kernels::cpu::isa_name(kernels::cpu::best_isa())).c_str());
  const double bandwidth = kernels::cpu::measure_read_bandwidth(pool, size_t(512) << 20, 5);
  const double bf16_peak = kernels::cpu::measure_bf16_dot_peak(pool, 0.05, 5);
  std::printf("read bandwidth  %.1f GB/s\n", bandwidth / 1e9);
  const double fma_peak = kernels::cpu::measure_fma_peak(pool, 0.05, 5);
  std::printf("fp32 FMA peak   %.0f GFLOP/s\n", fma_peak / 1e9);
  std::printf("bf16 dot peak   %.0f GFLOP/s\n", bf16_peak / 1e9);
  const double int8_peak = measure_int8_dot_peak(pool);
  std::printf("int8 dot peak   %.0f GOP/s\n", int8_peak / 1e9);
  // `kernel_lab THREADS quant`: only the quantized products.
  if (argc > 2 && std::string(argv[2]) == "quant") {
    quantized_products(pool, bf16_peak, int8_peak);
    return 0;
  }
  if (argc > 2 && std::string(argv[2]) == "attention") {
    prefill_attention_rates(pool, fma_peak, bf16_peak);
    return 0;
  }
  if (argc > 2 && std::string(argv[2]) == "train") {
    attention_backward_rate(pool, 512, 16, 64, 2);   // the mid model
    attention_backward_rate(pool, 512, 16, 128, 2);  // JetMoE-8B
    training_products(pool, bf16_peak);
    return 0;
  }

  const bool only_gemm = argc > 2 && std::string(argv[2]) == "gemm";  // `kernel_lab THREADS gemm`
  // Decoding: 1 .. 4 rows against the 8B shape's expert matrices, several experts stacked so
  // the weights come from DRAM (92 MB and 46 MB, beyond the 32 MB L3).
  for (const auto& [out, in] : {std::pair<int64_t, int64_t>{4 * 2048, 5632}, {11264, 2048}}) {
    if (only_gemm) break;
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
    for (int64_t T : {16, 64, 100, 128, 140, 512}) {  // 100 and 140: an expert's share is anything
      std::vector<float> x(size_t(T * in), 0.5f), y(size_t(T * out));
      for (auto act : {ops::Activations::F32, ops::Activations::BF16}) {
        if (only_gemm && act == ops::Activations::F32) continue;
        const double s = best_seconds(3, [&] { ops::matmul_xwT(x.data(), in, T, W, y.data(), out, pool, {act}); });
        const double flops = 2.0 * double(T * out * in) / s;
        std::printf("gemm T=%-4lld %s  %.0f GFLOP/s (%.0f%% of the bf16 peak)\n", (long long)T,
                    act == ops::Activations::F32 ? "f32 " : "bf16", flops / 1e9,
                    100.0 * flops / std::max(bf16_peak, 1.0));
      }
    }
  }
  if (only_gemm) return 0;
  prefill_attention_rates(pool, fma_peak, bf16_peak);
  quantized_products(pool, bf16_peak, int8_peak);
  return 0;
}
