#include "model/gradients.h"

#include <algorithm>
#include <map>
#include <span>

#include "core/error.h"

namespace jetmoe {

Gradients::Gradients(const JetMoeConfig& config) : specs_(param_specs(config)) {
  tensors_.reserve(specs_.size());
  std::map<std::string, float*> by_name;
  for (const ParamSpec& spec : specs_) by_name[spec.name] = tensors_.emplace_back(spec.shape).data();
  auto at = [&](const std::string& name) { return by_name.at(name); };
  embed = at("model.embed_tokens.weight");
  final_norm = at("model.norm.weight");
  lm_head = config.tie_word_embeddings ? embed : at("lm_head.weight");
  for (int64_t l = 0; l < config.num_layers; ++l) {
    auto layer = [&](const char* suffix) { return at(str_cat("model.layers.", l, ".", suffix)); };
    LayerGradients g;
    g.input_norm = layer("input_layernorm.weight");
    g.attn_router = layer("self_attention.experts.router.layer.weight");
    g.attn_q = layer("self_attention.experts.input_linear.weight");
    g.attn_o = layer("self_attention.experts.output_linear.weight");
    g.attn_bias = layer("self_attention.experts.bias");
    g.kv_proj = layer("self_attention.kv_proj.weight");
    g.post_norm = layer("post_attention_layernorm.weight");
    g.mlp_router = layer("mlp.router.layer.weight");
    g.mlp_in = layer("mlp.input_linear.weight");
    g.mlp_out = layer("mlp.output_linear.weight");
    g.mlp_bias = layer("mlp.bias");
    layers.push_back(g);
  }
}

void Gradients::zero(ThreadPool& pool) {
  // Floats per piece of work: 32 MB, above the size from which memset streams past the caches
  // (no read of the lines it overwrites; measured 0.047 s against 0.076 s for 3 GB in 256 KB runs).
  constexpr int64_t kRun = int64_t(1) << 23;
  std::vector<std::span<float>> runs;
  for (FloatTensor& t : tensors_)
    for (size_t begin = 0; begin < t.values.size(); begin += kRun)
      runs.push_back(std::span<float>(t.values).subspan(begin, std::min<size_t>(kRun, t.values.size() - begin)));
  pool.parallel_for(int64_t(runs.size()), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) std::fill(runs[size_t(r)].begin(), runs[size_t(r)].end(), 0.0f);
  });
}

const FloatTensor& Gradients::get(const std::string& name) const {
  for (size_t i = 0; i < specs_.size(); ++i)
    if (specs_[i].name == name) return tensors_[i];
  fail("no gradient for parameter '", name, "': the model has no such tensor");
}

std::vector<NamedTensor> Gradients::named() const {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < specs_.size(); ++i) out.push_back({specs_[i].name, tensors_[i].view()});
  return out;
}

}  // namespace jetmoe
