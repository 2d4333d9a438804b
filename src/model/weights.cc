#include "model/weights.h"

#include <set>

#include "core/error.h"

namespace jetmoe {
namespace {

std::string layer_name(int64_t layer, const char* suffix) {
  return str_cat("model.layers.", layer, ".", suffix);
}

// Tensors a checkpoint may carry that are not parameters of this config, and that HF ignores
// too: a head saved beside tied embeddings (HF re-ties it to the embedding after loading) and
// RoPE frequency buffers that older exports saved (we compute them from rope_theta).
bool ignored_extra_tensor(const JetMoeConfig& config, const std::string& name) {
  if (name == "lm_head.weight") return config.tie_word_embeddings;
  const std::string buffer = ".rotary_emb.inv_freq";
  return name.size() > buffer.size() && name.compare(name.size() - buffer.size(), buffer.size(), buffer) == 0;
}

}  // namespace

std::vector<ParamSpec> param_specs(const JetMoeConfig& c) {
  using Init = ParamSpec::Init;
  const int64_t d = c.hidden_size, E = c.num_experts, HD = c.kv_proj_size(), F = c.intermediate_size;
  std::vector<ParamSpec> specs;
  specs.push_back({"model.embed_tokens.weight", {c.vocab_size, d}, Init::Normal});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    specs.push_back({layer_name(l, "input_layernorm.weight"), {d}, Init::Ones});
    specs.push_back({layer_name(l, "self_attention.experts.router.layer.weight"), {E, d}, Init::Normal});
    specs.push_back({layer_name(l, "self_attention.experts.input_linear.weight"), {E, HD, d}, Init::Normal});
    specs.push_back({layer_name(l, "self_attention.experts.output_linear.weight"), {E, d, HD}, Init::Normal});
    specs.push_back({layer_name(l, "self_attention.experts.bias"), {d}, Init::Zeros});
    specs.push_back({layer_name(l, "self_attention.kv_proj.weight"), {2 * HD, d}, Init::Normal});
    specs.push_back({layer_name(l, "post_attention_layernorm.weight"), {d}, Init::Ones});
    specs.push_back({layer_name(l, "mlp.router.layer.weight"), {E, d}, Init::Normal});
    specs.push_back({layer_name(l, "mlp.input_linear.weight"), {E, 2 * F, d}, Init::Normal});
    specs.push_back({layer_name(l, "mlp.output_linear.weight"), {E, d, F}, Init::Normal});
    specs.push_back({layer_name(l, "mlp.bias"), {d}, Init::Zeros});
  }
  specs.push_back({"model.norm.weight", {d}, Init::Ones});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {c.vocab_size, d}, Init::Normal});
  return specs;
}

ModelWeights bind_weights(const JetMoeConfig& config, const TensorStore& store) {
  std::map<std::string, TensorView> bound;
  for (const ParamSpec& spec : param_specs(config)) {
    if (!store.contains(spec.name)) {
      std::string hint;
      if (spec.name == "lm_head.weight") hint = " (config says tie_word_embeddings=false)";
      fail(store.source(), ": missing tensor '", spec.name, "'", hint, "; expected shape ", shape_str(spec.shape));
    }
    const TensorView& view = store.get(spec.name);
    if (view.shape != spec.shape)
      fail(store.file_of(spec.name), ": tensor '", spec.name, "' has shape ", shape_str(view.shape),
           " but the config implies ", shape_str(spec.shape));
    bound[spec.name] = view;
  }
  for (const std::string& name : store.names()) {
    if (bound.count(name) || ignored_extra_tensor(config, name)) continue;
    fail(store.file_of(name), ": unexpected tensor '", name, "' (not part of a JetMoE model with this config)");
  }

  ModelWeights w;
  w.embed = bound.at("model.embed_tokens.weight");
  w.final_norm = bound.at("model.norm.weight");
  w.lm_head = config.tie_word_embeddings ? w.embed : bound.at("lm_head.weight");
  for (int64_t l = 0; l < config.num_layers; ++l) {
    auto at = [&](const char* suffix) { return bound.at(layer_name(l, suffix)); };
    LayerWeights lw;
    lw.input_norm = at("input_layernorm.weight");
    lw.attn_router = at("self_attention.experts.router.layer.weight");
    lw.attn_q = at("self_attention.experts.input_linear.weight");
    lw.attn_o = at("self_attention.experts.output_linear.weight");
    lw.attn_bias = at("self_attention.experts.bias");
    lw.kv_proj = at("self_attention.kv_proj.weight");
    lw.post_norm = at("post_attention_layernorm.weight");
    lw.mlp_router = at("mlp.router.layer.weight");
    lw.mlp_in = at("mlp.input_linear.weight");
    lw.mlp_out = at("mlp.output_linear.weight");
    lw.mlp_bias = at("mlp.bias");
    w.layers.push_back(lw);
  }
  return w;
}

ParamCounts count_params(const JetMoeConfig& c) {
  const int64_t d = c.hidden_size, E = c.num_experts, k = c.top_k, HD = c.kv_proj_size(), F = c.intermediate_size;
  const int64_t q_or_o = HD * d;        // one expert's query (or output) projection
  const int64_t kv = 2 * HD * d;
  const int64_t router = E * d;
  const int64_t glu_in = 2 * F * d, glu_out = d * F;
  const int64_t norms = 2 * d;

  const int64_t layer_total = E * 2 * q_or_o + kv + router + d + E * (glu_in + glu_out) + router + d + norms;
  const int64_t layer_active = k * 2 * q_or_o + kv + router + d + k * (glu_in + glu_out) + router + d + norms;
  const int64_t embed = c.vocab_size * d;
  const int64_t head = c.tie_word_embeddings ? 0 : c.vocab_size * d;

  ParamCounts out;
  out.total = c.num_layers * layer_total + embed + head + d;
  out.active_non_embedding = c.num_layers * layer_active + d;
  out.active = out.active_non_embedding + embed + head;
  return out;
}

}  // namespace jetmoe
