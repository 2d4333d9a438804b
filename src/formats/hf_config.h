// The model configuration read from a Hugging Face `jetmoe` config.json.
// Accepts the HF-native key names, the original remote-code names and GPT-2 style
// spellings (spec P12); refuses a config whose sizes cannot be determined.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace jetmoe {

struct JetMoeConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;          // d
  int64_t num_layers = 0;           // num_hidden_layers / num_layers / n_layer
  int64_t num_experts = 0;          // E: num_local_experts / moe_num_experts (MoA and MoE alike)
  int64_t top_k = 0;                // k: num_experts_per_tok / moe_top_k
  int64_t num_kv_heads = 0;         // num_key_value_heads (= query heads per attention expert)
  int64_t head_dim = 0;             // kv_channels / head_dim
  int64_t intermediate_size = 0;    // intermediate_size / ffn_hidden_size (per MLP expert)
  int64_t max_position_embeddings = 4096;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;       // final norm only; block norms use kBlockNormEps (spec P9)
  double initializer_range = 0.01;
  double aux_loss_coef = 0.01;
  bool tie_word_embeddings = true;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  DType torch_dtype = DType::BF16;  // the dtype the checkpoint declares (informational)

  // HF and the original code build the per-block norms with the class default eps (spec P9).
  static constexpr double kBlockNormEps = 1e-6;

  int64_t num_attention_heads() const { return num_kv_heads * top_k; }
  int64_t kv_proj_size() const { return num_kv_heads * head_dim; }  // rows of K (and of V)
};

// Parses and validates config.json text. `source` names the file in error messages.
// Throws jetmoe::Error naming the missing or inconsistent field.
JetMoeConfig parse_config_json(const std::string& text, const std::string& source);
JetMoeConfig load_config(const std::string& path);

// Checks ranges and consistency (positive sizes, 1 <= top_k <= num_experts, token ids inside
// the vocabulary, ...). Called by the parser; also used on configs built in code.
void validate_config(const JetMoeConfig& config, const std::string& source);

// HF-native config.json text (model_type "jetmoe", architectures JetMoeForCausalLM) that
// transformers' JetMoeConfig reads back to the same model.
std::string config_to_json(const JetMoeConfig& config);

}  // namespace jetmoe
