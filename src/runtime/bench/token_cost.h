// The least work one token of a JetMoE model takes, for the bounds `jetmoe bench` divides by:
// decoding is bound by the bytes of weights a token must read, prompt processing by its
// multiply-adds.
#pragma once

#include "model/model.h"

namespace jetmoe {

struct TokenCost {
  // Bytes of weights one decoding step reads, in their stored dtypes: k of the E experts of every
  // stacked expert tensor, all shared projections, routers, norms and biases, the head, and one
  // embedding row. (The KV cache it also reads is not counted: the bound is the weights'.)
  double weight_bytes_per_generated_token = 0;
  // 2 x the active non-embedding parameters (spec §1.8): the multiply-adds of one prompt token
  // through every block; attention scores and the (last-token) head are not counted.
  double flops_per_prompt_token = 0;
  // 3 x that plus the head's 6 x V x d: a training step takes the logits of every token, forward
  // and backward (as train/mfu.h counts them; attention scores are not counted here either).
  double flops_per_trained_token = 0;
  // What each position already in the KV cache adds to a token (bench --depth): decoding reads
  // its K and V rows in every layer (spec §6: 2 x H x D values per layer, 4 bytes each in an F32
  // cache, 2 in an F16 one), and a prompt token's k x H query heads each take a score and a
  // weighted value against it (4 x k x H x D FLOPs per layer).
  double kv_bytes_per_cached_position = 0;
  double attention_flops_per_cached_position = 0;
};

// kv_cache_type: the element type of the KV cache decoding reads (F32 or F16).
TokenCost token_cost(const Model& model, DType kv_cache_type = DType::F32);

}  // namespace jetmoe
