// Grouped expert products: the rows of every assignment are put in expert order (expert e's
// block starts at routing.offsets[e]) and each expert multiplies its block once. A mixture keeps
// its activations in that order from its first product to the gated combine, so the wide rows
// between the two products (the MoE's 2F-float up-projection) are never copied back to token order.
#pragma once

#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/ops.h"
#include "model/forward_scratch.h"
#include "model/router.h"

namespace jetmoe {

// out[i, :] = in_row(by_expert[i]) for every assignment in expert order, where in_row(a) is
// `in + (per_assignment ? a : a / k) * in_stride`; `width` floats per row.
void gather_to_expert_order(const Routing& routing, const float* in, int64_t in_stride, bool per_assignment,
                            int64_t width, float* out, ThreadPool& pool);

// out_e[i, :] = W[expert of row i] · in_e[i, :] for rows already in expert order (in_e: [T*k,
// in_dim], out_e: [T*k, out_dim], W: [E, out_dim, in_dim]); every expert in one parallel pass.
void expert_products(const Routing& routing, const float* in_e, const TensorView& W, float* out_e, ThreadPool& pool,
                     const ops::MatmulOptions& matmul);

// The same product with rows in token order on both sides: for every assignment a (= t*k + s),
// out[a, :] = W[expert(a)] · in_row(a) (in_row as in gather_to_expert_order); out: [T*k, out_dim].
// `scratch` holds the rows in expert order from call to call.
void expert_matmul(const Routing& routing, const float* in, int64_t in_stride, bool per_assignment,
                   const TensorView& W, float* out, ThreadPool& pool, const ops::MatmulOptions& matmul,
                   ExpertProductScratch& scratch);

// y[t, :] = sum_s gate[t, s] * rows_e[position[t*k + s], :] + bias: the gated combine of the k
// expert outputs, read from expert order (summed in slot order from zero, then the bias added),
// tokens shared among the pool.
void combine_gated(const Routing& routing, const float* rows_e, int64_t d, const TensorView& bias, float* y,
                   ThreadPool& pool);

}  // namespace jetmoe
