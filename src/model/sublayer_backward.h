// Backward passes of the pieces of one block over a whole batch, in the order of the forward:
// routing, grouped expert products and the gated combine (shared by both mixtures), then the
// mixture of attention and the mixture of MLP experts. The sequences of the batch are stacked
// into one set of rows (BatchRows), so that each expert's products run once over the tokens of
// every sequence, and all experts' products (with the dense ones beside them) in one parallel
// pass (ops::backward_products). Parameter gradients accumulate (+=); activation gradients are
// assigned unless a comment says they accumulate.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/backward_products.h"
#include "kernels/ref/ops.h"
#include "model/forward_scratch.h"
#include "model/gradients.h"
#include "model/router.h"
#include "model/tape.h"
#include "model/weights.h"

namespace jetmoe {

// A weight as fp32 memory: the tensor itself when it is F32 (training's master weights), else a
// converted copy (BF16/F16 checkpoints). For small weights read element by element (norms).
class Fp32Weight {
 public:
  explicit Fp32Weight(const TensorView& w);
  const float* data() const { return data_; }

 private:
  std::vector<float> copy_;
  const float* data_;
};

// A weight as the backward products read it: the view itself when F32, BF16 or F16 (converted
// exactly as it is packed), else an fp32 copy (quantized formats).
class BackwardWeight {
 public:
  explicit BackwardWeight(const TensorView& w);
  const TensorView& view() const { return view_; }

 private:
  std::vector<float> copy_;
  TensorView view_;
};

// The sequences of a batch stacked into one set of rows: token t of sequence b is row
// first[b] + t, and its assignment a = t*k + s (per-assignment arrays) is row first[b]*k + a.
struct BatchRows {
  std::vector<int64_t> first;  // [B + 1]; first.back() = total tokens
  int64_t tokens() const { return first.back(); }
  int64_t sequences() const { return int64_t(first.size()) - 1; }
  int64_t length(int64_t b) const { return first[size_t(b) + 1] - first[size_t(b)]; }
};

// One pointer per stacked row into per-sequence arrays of the tapes: row r of sequence b's array
// (rows `width` floats apart) for every sequence, in stacked order.
std::vector<const float*> stacked_rows(const BatchRows& rows, std::span<const float* const> per_sequence, int64_t width,
                                       int64_t rows_per_token);

// The same for per-assignment arrays kept in expert order (tape.h): one pointer per stacked
// assignment, to row routings[b]->position[a] of sequence b's array for its assignment a.
std::vector<const float*> stacked_expert_rows(const BatchRows& rows, std::span<const float* const> per_sequence,
                                              std::span<const Routing* const> routings, int64_t width);

// The routing of one router over the batch, in stacked assignments (A = row*k + s).
struct BatchRouting {
  int64_t num_experts = 0, top_k = 0;
  std::vector<int32_t> expert;  // [N*k]
  std::vector<float> gate;      // [N*k]
  // Stacked assignments grouped by expert (sequence order, then token order); expert e owns
  // by_expert[offsets[e] .. offsets[e + 1]). position[A] is where A sits in by_expert.
  std::vector<int64_t> by_expert;
  std::vector<int64_t> offsets;   // [E + 1]
  std::vector<int64_t> position;  // [N*k]

  int64_t count(int64_t e) const { return offsets[size_t(e) + 1] - offsets[size_t(e)]; }
  int64_t assignments() const { return int64_t(expert.size()); }
};

// routings[b] is sequence b's routing (length(b) tokens each).
BatchRouting stack_routing(const BatchRows& rows, std::span<const Routing* const> routings);

// Grow-only buffers of the backward pass, kept across calls so that a training step does not
// fault in fresh pages for them. Every buffer is written before it is read.
struct BackwardScratch {
  std::vector<float> stacked_in;      // [N, d] the sublayer's input h, stacked (dense products' x)
  std::vector<float> expert_in;       // [N*k, d] h rows in expert order
  std::vector<float> expert_dout;     // [N*k, d] gate * dy rows in expert order
  std::vector<float> expert_mid;      // [N*k, max(F, HD)] act / heads rows in expert order
  std::vector<float> expert_dmid;     // [N*k, max(F, HD)] their gradients
  std::vector<float> expert_wide;     // [N*k, 2F] up rows in expert order (MoE)
  std::vector<float> expert_dwide;    // [N*k, max(2F, HD)] dup / dq rows in expert order
  std::vector<float> expert_dh;       // [N*k, d] dh of each assignment in expert order
  std::vector<float> dgate;           // [N*k]
  std::vector<float> router_dlogits;  // [N, E]
  std::vector<float> dh_router;       // [N, d]
  std::vector<float> dh_dense;        // [N, d] kv_proj's part of dh (MoA)
  std::vector<float> dheads;          // [N*k, HD] assignment order (MoA)
  std::vector<float> dq;              // [N*k, HD] assignment order (MoA)
  std::vector<float> dkv;             // [N, 2*HD] (MoA)
};


// dout rows of every assignment in expert order: expert_dout[i] = gate[A] * dy[A / k] for
// A = by_expert[i], and dgate[A] = dy[A / k] · rows[A] (rows: the combined expert outputs).
void combine_gated_backward(const BatchRouting& r, const std::vector<const float*>& rows, const float* dy, int64_t d,
                            float* expert_dout, float* dgate, ThreadPool& pool);

// out[i] = src[by_expert[i] / k] (per_token) or src[by_expert[i]] for `width` floats per row.
void gather_to_experts(const BatchRouting& r, const std::vector<const float*>& src, bool per_token, int64_t width,
                       float* out, ThreadPool& pool);

// The products of one expert stack's backward, appended to `products`: for each expert e with
// rows, dW[e] += dout_e^T · in_e and din_e = dout_e · W[e], over the rows of e in expert order
// (dout [N*k, out_dim], in and din [N*k, in_dim]). W: [E, out_dim, in_dim].
void add_expert_products(const BatchRouting& r, const TensorView& W, const float* dout, const float* in, float* dW,
                         float* din, std::vector<ops::BackwardProduct>& products);

// The router's logit gradient: dlogits [N, E] = aux_grad (may be null) + softmax backward of the
// gates (dgate [N*k], stacked assignment order) into the chosen logits.
void router_logits_backward(const BatchRouting& r, const float* dgate, const float* aux_grad, float* dlogits);

// The first steps of a mixture's backward, the same for attention and MLP experts, for
// y = sum_s gate_s * expert_out_s + bias over the stacked batch (expert_out: a row pointer per
// stacked assignment, stacked_expert_rows' or stacked_rows'): dbias accumulates; the output
// gradient of every assignment, in expert order, goes to scratch.expert_dout [N*k, d]; the
// router logits' gradient (aux_grad may be null) to scratch.router_dlogits [N, E]; the sublayer
// input h, stacked, to scratch.stacked_in [N, d] (the dense products' x).
struct MixtureOutputGrads {
  float* dexpert_out;
  const float* dlogits;
  const float* h_stacked;
};
MixtureOutputGrads mixture_output_backward(const BatchRows& rows, const BatchRouting& r,
                                           const std::vector<const float*>& expert_out,
                                           std::span<const float* const> h,
                                           const float* dy, const float* aux_grad, int64_t d, float* dbias,
                                           BackwardScratch& scratch, ThreadPool& pool);

// The next step, the same for both mixtures: one pass of the products of the output stack
// (expert_out_s = W_out[e_s] · mid_s, mid: a pointer to mid_width floats per stacked assignment)
// and of the router (logits = W_router · h). dW_out and dW_router accumulate; returns mid's
// gradient in expert order (scratch.expert_dmid [N*k, mid_width]) and h's through the router
// (scratch.dh_router [N, d]).
struct OutputStackGrads {
  float* dmid_experts;
  const float* dh_router;
};
OutputStackGrads output_stack_backward(const BatchRows& rows, const BatchRouting& r, const MixtureOutputGrads& out,
                                       const TensorView& W_out, float* dW_out, const std::vector<const float*>& mid,
                                       int64_t mid_width, const TensorView& W_router, float* dW_router, int64_t d,
                                       BackwardScratch& scratch, ThreadPool& pool, const ops::MatmulOptions& matmul);

// dh[row] (assigned) = base[0][row] + base[1][row] + ... + the din rows of the row's k
// assignments, slot by slot (expert_dh in expert order, d floats per row).
void sum_token_gradients(const BatchRouting& r, std::span<const float* const> base, const float* expert_dh, int64_t d,
                         int64_t tokens, float* dh, ThreadPool& pool);

// Backward of mixture_of_attention() for every sequence of the batch, each recorded from
// position 0. h: per-sequence inputs (tapes' attn_norm); dy: [N, d] stacked gradient of the
// output; router_grad: [N, E] auxiliary-loss gradient of the router logits (may be null).
// dh: [N, d] assigned.
void mixture_of_attention_backward(const LayerWeights& w, const JetMoeConfig& c, const kernels::Rope& rope,
                                   const BatchRows& rows, std::span<const AttentionTape* const> tapes,
                                   std::span<const float* const> h, const float* dy, const float* router_grad,
                                   LayerGradients& g, float* dh, BackwardScratch& scratch, ThreadPool& pool,
                                   const ops::MatmulOptions& matmul);

// Backward of mixture_of_experts() for every sequence; arguments as above (h = tapes' mlp_norm).
void mixture_of_experts_backward(const LayerWeights& w, const JetMoeConfig& c, const BatchRows& rows,
                                 std::span<const ExpertsTape* const> tapes, std::span<const float* const> h,
                                 const float* dy, const float* router_grad, LayerGradients& g, float* dh,
                                 BackwardScratch& scratch, ThreadPool& pool, const ops::MatmulOptions& matmul);

}  // namespace jetmoe
