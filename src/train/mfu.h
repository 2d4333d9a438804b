// Model FLOPs utilisation of training: the FLOPs a training token needs by the model's arithmetic
// (not what the kernels happen to execute), times tokens per second, over the machine's measured
// multiply-add peak.
//
// Per token, forward + backward = 3 x forward, 2 FLOPs per multiply-add:
//   matmul    = 6 x the matrix parameters the token passes through: per layer the two routers,
//               k of E attention experts' query and output projections, the shared kv_proj and
//               k of E GLU experts' input and output matrices; plus the head (V x d, tied or not).
//               The embedding lookup, norms and biases are not products and are left out.
//   attention = 12 x layers x k x H x D x seq_len / 2: for each of the k slots, H heads of D dims
//               take a score (QK) and a value (AV) multiply-add per visible key, and a causal
//               token sees seq_len / 2 keys on average.
#pragma once

#include <cstdint>
#include <string>

#include "core/parallel.h"
#include "formats/hf_config.h"

namespace jetmoe {

// The matrix parameters one token passes through (see above).
int64_t active_matmul_params(const JetMoeConfig& config);

struct TrainingFlops {
  double matmul = 0.0;     // per token
  double attention = 0.0;  // per token, at the given seq_len
  double per_token() const { return matmul + attention; }
};
TrainingFlops training_flops_per_token(const JetMoeConfig& config, int64_t seq_len);

struct ComputePeak {
  double flops_per_second = 0.0;  // all pool threads together
  std::string kind;               // "bf16 dot products (avx512bf16)" or "fp32 FMA (<isa>)"
};
// The bf16 dot-product peak where the CPU has AVX512_BF16, else the fp32 FMA peak, measured on
// every thread of `pool` (kernels/cpu/machine_probe.h; best of 6 runs, about 0.2 s).
ComputePeak measure_compute_peak(ThreadPool& pool);

}  // namespace jetmoe
