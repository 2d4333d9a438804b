// Backward of causal attention from position 0 (ops::causal_attention with an empty cache), for
// training. Each head's probabilities are recomputed from its queries and keys (nothing but the
// inputs is kept from the forward). Per query row a, reading keys 0 .. n(a)-1:
//   P = softmax(scale * q_a · K^T),  dP = dout_a · V^T,  dS = P * (dP - sum(P * dP))
//   dq_a = scale * dS · K,  dK += scale * dS^T q_a,  dV += P^T dout_a
// Same meaning as the scalar backward in tests (and the model's former loop), up to the order of
// fp32 sums and the exp of the vector kernels (about 1 ulp). Deterministic: each head is one work
// item, its sums in a fixed order whatever the threads.
#pragma once

#include <cstdint>
#include <span>

#include "core/parallel.h"
#include "kernels/cpu/isa.h"

namespace jetmoe::ops {

// One query/KV head of one sequence. Query row a (slot a % k of token a / k when `slots` = k)
// attends to positions 0 .. a / slots.
struct AttentionBackwardHead {
  const float* q = nullptr;  // row a at q + a * q_stride (post-RoPE), head_dim floats
  int64_t q_stride = 0;
  const float* dout = nullptr;  // gradient of row a's attention output, rows dout_stride apart
  int64_t dout_stride = 0;
  const float* keys = nullptr;  // position p at keys + p * kv_stride (post-RoPE)
  const float* values = nullptr;
  int64_t kv_stride = 0;
  float* dq = nullptr;  // rows dq_stride apart (assigned)
  int64_t dq_stride = 0;
  float* dkeys = nullptr;  // positions dkv_stride apart (assigned, all `positions` of them)
  float* dvalues = nullptr;
  int64_t dkv_stride = 0;
  int64_t rows = 0;       // query rows
  int64_t slots = 1;      // query rows per position
  int64_t positions = 0;  // keys / values rows = ceil(rows / slots)
  int64_t head_dim = 0;
};

// Runs every head, heads shared among the pool threads. Heads must not write the same memory.
void attention_backward(std::span<const AttentionBackwardHead> heads, ThreadPool& pool,
                        kernels::cpu::Isa isa = kernels::cpu::best_isa());

}  // namespace jetmoe::ops
