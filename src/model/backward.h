// The JetMoE backward pass: the training losses (spec §2.3) and the gradient of their weighted sum
// with respect to every parameter, computed from the tapes that training forwards recorded.
//   L = CE + aux_coef * sum_routers L_b + z_coef * sum_routers L_z
// CE is the mean next-token cross-entropy over the scored tokens of the whole batch; every MoA and
// every MoE layer is one router, whose auxiliary losses run over all tokens of the batch
// (router_losses.h). Sequences are independent otherwise. fp32 throughout, except the weight
// products in bf16 training (matmul.activations = BF16: see ops::backward_products).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "formats/hf_config.h"
#include "model/gradients.h"
#include "model/model.h"
#include "model/tape.h"
#include "model/weights.h"

namespace jetmoe {

struct LossOptions {
  double aux_coef = 0.01;  // alpha: Switch load-balancing loss coefficient
  double z_coef = 0.001;   // beta: router z-loss coefficient
};

struct LossTerms {
  double ce = 0.0;            // mean next-token cross-entropy (0 when no token is scored)
  int64_t scored_tokens = 0;  // how many labels took part in it
  double load_balance = 0.0;  // sum over routers of L_b
  double z_loss = 0.0;        // sum over routers of L_z
  double total = 0.0;         // ce + aux_coef * load_balance + z_coef * z_loss
  // Per router, layer by layer, attention before MLP ([2L][E]): each expert's share of the
  // routed assignments (f of spec §2.3).
  std::vector<std::vector<double>> expert_fraction;
};

// One training sequence. labels are aligned with the tokens (HF convention): the logits at
// position t are scored against labels[t + 1]; a negative label is ignored. labels has one entry
// per token, or one more when the token after the sequence is known (packed training windows).
struct TrainingSequence {
  std::span<const int32_t> tokens;
  std::span<const int64_t> labels;
};

// Losses and gradients of recorded forwards: tapes[b] and logits[b] ([T_b, V]) come from
// Model::forward with a tape over sequence b, whose labels are labels[b]. Gradients are added
// (+=) into `grads`, so several calls accumulate. Throws on mismatched sizes or labels outside
// the vocabulary.
LossTerms backward(const JetMoeConfig& config, const ModelWeights& weights, std::span<const ForwardTape> tapes,
                   std::span<const FloatTensor> logits, std::span<const std::span<const int64_t>> labels,
                   const LossOptions& options, Gradients& grads, ThreadPool& pool,
                   const ops::MatmulOptions& matmul = {});

// The training step's forward and backward: one taped forward per sequence, then backward()
// with the model's matmul options (bf16 products for a bf16 compute model).
LossTerms forward_backward(const Model& model, std::span<const TrainingSequence> batch, const LossOptions& options,
                           Gradients& grads, ThreadPool& pool);

}  // namespace jetmoe
