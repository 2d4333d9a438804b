// Scalar oracle of causal attention with JetMoE's shared K/V (spec §1.4, P1): the loop the
// forward pass started with, kept as the reference for ops::causal_attention.
#pragma once

#include <cstdint>

#include "core/parallel.h"

namespace jetmoe::kernels {

// q, out: [T*k, H*D] per assignment (slot s of token t is row t*k+s, its query heads j*D..);
// keys, values: [start + T, H*D]. Query head j of any slot reads KV head j (the tile mapping),
// over positions 0 .. start + t; scores scaled by 1/sqrt(D), full softmax, weighted sum of V.
// bf16_products: q, keys and values are rounded to bf16 (nearest even) before their products,
// and so is each weight e = exp(score - max score) before it multiplies its value row; the sum
// of the e that normalises the output is not rounded. (A fast kernel whose softmax runs over key
// blocks rounds exp(score - running max) instead: the same when a row's keys fit one block.)
void causal_attention(const float* q, int64_t T, int64_t k, int64_t H, int64_t D, const float* keys,
                      const float* values, int64_t start, float* out, ThreadPool& pool, bool bf16_products = false);

}  // namespace jetmoe::kernels
