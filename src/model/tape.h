// The activation record ("tape") a training forward keeps for the backward pass. The forward
// fills it when given one; the backward (backward.h) reads it. One tape per sequence, recorded
// from position 0. Shapes use T tokens, k experts per token, H KV heads of D channels (HD = H*D),
// d hidden size, F MLP expert width; an assignment a = t*k + s is slot s of token t.
#pragma once

#include <cstdint>
#include <vector>

#include "model/router.h"

namespace jetmoe {

struct AttentionTape {
  Routing routing;
  std::vector<float> queries;    // [T*k, HD] post-RoPE queries of each assignment's expert
  std::vector<float> keys;       // [T, HD] post-RoPE shared keys
  std::vector<float> values;     // [T, HD] shared values
  std::vector<float> heads;      // [T*k, HD] attention output of each assignment (input of Wo)
  // [T*k, d] Wo[e] · heads before the gate (gate gradients need it), in the routing's expert
  // order: row routing.position[a] holds assignment a, as the forward pass computed it.
  std::vector<float> projected;
  // Attention probabilities are not kept: the backward recomputes them from queries and keys.
};

// Rows in the routing's expert order (row routing.position[a] holds assignment a), as the
// forward pass computed them.
struct ExpertsTape {
  Routing routing;
  std::vector<float> up;    // [T*k, 2F] GLU pre-activations (SiLU half, then linear half)
  std::vector<float> act;   // [T*k, F] silu(up_gate) * up_linear (input of W_out)
  std::vector<float> down;  // [T*k, d] W_out[e] · act, before the gate
};

struct LayerTape {
  std::vector<float> attn_in;    // [T, d] residual stream entering the block (input of input_layernorm)
  std::vector<float> attn_norm;  // [T, d] its normalised value (input of the mixture of attention)
  std::vector<float> mlp_in;     // [T, d] residual stream after attention (input of post_attention_layernorm)
  std::vector<float> mlp_norm;   // [T, d] its normalised value (input of the MLP experts)
  AttentionTape attn;
  ExpertsTape mlp;
};

struct ForwardTape {
  std::vector<int32_t> tokens;  // [T]
  std::vector<LayerTape> layers;
  std::vector<float> final_in;    // [T, d] residual stream entering the final norm
  std::vector<float> final_norm;  // [T, d] normalised (input of the head)
};

}  // namespace jetmoe
