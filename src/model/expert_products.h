// Grouped expert products: for each expert, gather the rows of its assignments into one
// contiguous block, multiply once by that expert's matrix, and hand the block back.
#pragma once

#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/ops.h"
#include "model/forward_scratch.h"
#include "model/router.h"

namespace jetmoe {

// For every assignment a (= t*k + s), out[a, :] = W[expert(a)] · in_row(a), where in_row(a) is
// `in + (per_assignment ? a : a / k) * in_stride`. W: [E, out_dim, in_dim]. out: [T*k, out_dim].
// Every expert's product runs in one parallel pass (ops::matmul_xwT_grouped); `scratch` holds the
// gathered rows from call to call.
void expert_matmul(const Routing& routing, const float* in, int64_t in_stride, bool per_assignment,
                   const TensorView& W, float* out, ThreadPool& pool, const ops::MatmulOptions& matmul,
                   ExpertProductScratch& scratch);

// y[t, :] = sum_s gate[t, s] * rows[t*k + s, :] + bias: the gated combine of the k expert
// outputs (summed in slot order from zero, then the bias added), tokens shared among the pool.
void combine_gated(const Routing& routing, const float* rows, int64_t d, const TensorView& bias, float* y,
                   ThreadPool& pool);

}  // namespace jetmoe
