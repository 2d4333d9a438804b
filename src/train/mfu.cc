#include "train/mfu.h"

#include "kernels/cpu/isa.h"
#include "kernels/cpu/machine_probe.h"

namespace jetmoe {

int64_t active_matmul_params(const JetMoeConfig& c) {
  const int64_t d = c.hidden_size, k = c.top_k, HD = c.kv_proj_size(), F = c.intermediate_size;
  const int64_t routers = 2 * c.num_experts * d;
  const int64_t attention = k * 2 * HD * d + 2 * HD * d;  // k x (Wq + Wo), shared kv_proj
  const int64_t mlp = k * 3 * F * d;                       // k x (input_linear [2F, d] + output_linear [d, F])
  return c.num_layers * (routers + attention + mlp) + c.vocab_size * d;
}

TrainingFlops training_flops_per_token(const JetMoeConfig& c, int64_t seq_len) {
  TrainingFlops f;
  f.matmul = 6.0 * double(active_matmul_params(c));
  f.attention = 12.0 * double(c.num_layers * c.top_k * c.num_kv_heads * c.head_dim) * double(seq_len) / 2.0;
  return f;
}

ComputePeak measure_compute_peak(ThreadPool& pool) {
  using namespace kernels::cpu;
  // Best of several short runs: on a shared machine some of them find the cores free.
  constexpr double kSecondsPerRun = 0.02;
  constexpr int kRuns = 6;
  const Isa isa = best_isa();
  if (const double bf16 = measure_bf16_dot_peak(pool, kSecondsPerRun, kRuns, isa); bf16 > 0)
    return {bf16, "bf16 dot products (" + std::string(isa_name(isa)) + ")"};
  return {measure_fma_peak(pool, kSecondsPerRun, kRuns, isa), "fp32 FMA (" + std::string(isa_name(isa)) + ")"};
}

}  // namespace jetmoe
