// Backward passes of the pieces of one block, in the order of the forward: routing, grouped
// expert products and the gated combine (shared by both mixtures), then the mixture of attention
// and the mixture of MLP experts. Parameter gradients accumulate (+=); activation gradients are
// assigned unless a comment says they accumulate.
#pragma once

#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/ref/ops.h"
#include "model/gradients.h"
#include "model/router.h"
#include "model/tape.h"
#include "model/weights.h"

namespace jetmoe {

// A weight as fp32 memory: the tensor itself when it is F32 (training's master weights), else a
// converted copy (BF16/F16 checkpoints).
class Fp32Weight {
 public:
  explicit Fp32Weight(const TensorView& w);
  const float* data() const { return data_; }

 private:
  std::vector<float> copy_;
  const float* data_;
};

// Backward of route(). The top-k choice is piecewise constant; the gates are a softmax over the k
// chosen logits, so dgate [T, k] reaches only those logits. aux_grad [T, E] (may be null) is the
// gradient of the auxiliary losses with respect to all logits. dWr [E, d] accumulates;
// dh [T, d] accumulates (h feeds several products).
void router_backward(const Routing& r, const float* dgate, const float* aux_grad, const float* h, const TensorView& Wr,
                     float* dWr, float* dh, ThreadPool& pool);

// Backward of expert_matmul(): dout [T*k, out_dim]; din rows are indexed like the input rows
// (per assignment or per token, in_stride apart) and accumulate; dW [E, out_dim, in_dim] accumulates.
void expert_matmul_backward(const Routing& r, const float* in, int64_t in_stride, bool per_assignment,
                            const TensorView& W, const float* dout, float* din, float* dW, ThreadPool& pool);

// Backward of combine_gated(): drows [T*k, d] = gate * dy[t] and dgate [T*k] = dy[t] · rows[a],
// both assigned.
void combine_gated_backward(const Routing& r, const float* rows, const float* dy, int64_t d, float* drows,
                            float* dgate);

// Backward of mixture_of_attention() for one sequence recorded from position 0.
// h: [T, d] its input (tape's attn_norm); dy: [T, d] gradient of its output; router_grad: [T, E]
// auxiliary-loss gradient of the router logits (may be null). dh: [T, d] assigned.
void mixture_of_attention_backward(const LayerWeights& w, const JetMoeConfig& c, const kernels::Rope& rope,
                                   const AttentionTape& tape, const float* h, const float* dy, const float* router_grad,
                                   LayerGradients& g, float* dh, ThreadPool& pool);

// Backward of mixture_of_experts() for one sequence; arguments as above (h = tape's mlp_norm).
void mixture_of_experts_backward(const LayerWeights& w, const JetMoeConfig& c, const ExpertsTape& tape, const float* h,
                                 const float* dy, const float* router_grad, LayerGradients& g, float* dh,
                                 ThreadPool& pool);

}  // namespace jetmoe
