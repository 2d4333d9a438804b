// JetMoE weights as views under their canonical HF names (spec §1.7). The model never parses
// files: it receives named tensors and checks every shape against the config.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/checkpoint.h"
#include "formats/hf_config.h"

namespace jetmoe {

struct LayerWeights {
  TensorView input_norm;    // [d]
  TensorView attn_router;   // [E, d]
  TensorView attn_q;        // [E, H*D, d]   per-expert query projection (Wq)
  TensorView attn_o;        // [E, d, H*D]   per-expert output projection (Wo)
  TensorView attn_bias;     // [d]
  TensorView kv_proj;       // [2*H*D, d]    rows 0..HD-1 = K, HD..2HD-1 = V (spec P8)
  TensorView post_norm;     // [d]
  TensorView mlp_router;    // [E, d]
  TensorView mlp_in;        // [E, 2F, d]    rows 0..F-1 = SiLU branch, F..2F-1 = linear (spec P6)
  TensorView mlp_out;       // [E, d, F]
  TensorView mlp_bias;      // [d]
};

struct ModelWeights {
  TensorView embed;         // [V, d]
  std::vector<LayerWeights> layers;
  TensorView final_norm;    // [d]
  TensorView lm_head;       // [V, d]; the same view as `embed` when tied
};

// One entry per parameter tensor the config implies, in a fixed order.
struct ParamSpec {
  std::string name;  // HF name, e.g. "model.layers.3.mlp.input_linear.weight"
  Shape shape;
  enum class Init { Normal, Zeros, Ones } init;
};
std::vector<ParamSpec> param_specs(const JetMoeConfig& config);

// Binds every tensor of `store` the config needs; throws naming the tensor, the file and the
// problem (missing, wrong shape, unsupported dtype). Unknown extra tensors are an error too,
// so a checkpoint for another architecture is not silently half-used.
ModelWeights bind_weights(const JetMoeConfig& config, const TensorStore& store);

// Total and active-per-token parameter counts (spec §1.8 arithmetic).
struct ParamCounts {
  int64_t total = 0;
  int64_t active = 0;               // including embedding (and head if untied)
  int64_t active_non_embedding = 0;
};
ParamCounts count_params(const JetMoeConfig& config);

}  // namespace jetmoe
