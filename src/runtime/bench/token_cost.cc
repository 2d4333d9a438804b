#include "runtime/bench/token_cost.h"

namespace jetmoe {
namespace {

// Bytes a decoding step reads of `w`: all of a shared tensor, k/E of an [E, out, in] expert stack.
double active_bytes(const TensorView& w, const JetMoeConfig& c) {
  const double bytes = double(w.nbytes());
  return w.shape.size() == 3 ? bytes * double(c.top_k) / double(c.num_experts) : bytes;
}

}  // namespace

TokenCost token_cost(const Model& model, DType kv_cache_type) {
  const JetMoeConfig& c = model.config();
  const ModelWeights& w = model.weights();
  double bytes = 0;
  for (const LayerWeights& l : w.layers)
    for (const TensorView* v : {&l.input_norm, &l.attn_router, &l.attn_q, &l.attn_o, &l.attn_bias, &l.kv_proj,
                                &l.post_norm, &l.mlp_router, &l.mlp_in, &l.mlp_out, &l.mlp_bias})
      bytes += active_bytes(*v, c);
  bytes += double(w.final_norm.nbytes()) + double(w.lm_head.nbytes());
  bytes += double(dtype_bytes(w.embed.dtype, c.hidden_size));  // the token's embedding row

  TokenCost cost;
  cost.weight_bytes_per_generated_token = bytes;
  cost.flops_per_prompt_token = 2.0 * double(count_params(c).active_non_embedding);
  cost.flops_per_trained_token = 3.0 * cost.flops_per_prompt_token + 6.0 * double(c.vocab_size * c.hidden_size);
  cost.kv_bytes_per_cached_position = double(kv_cache_bytes_per_position(c, kv_cache_type));
  cost.attention_flops_per_cached_position = double(c.num_layers * 4 * c.top_k * c.kv_proj_size());
  return cost;
}

}  // namespace jetmoe
