#include "model/model.h"

#include "core/error.h"
#include "kernels/ops.h"
#include "model/mixture_of_attention.h"
#include "model/mixture_of_experts.h"

namespace jetmoe {

std::unique_ptr<Model> Model::load(const std::string& dir) {
  JetMoeConfig config = load_config(dir + "/config.json");
  return std::make_unique<Model>(config, TensorStore::open_dir(dir));
}

Model::Model(JetMoeConfig config, TensorStore store)
    : config_(config), store_(std::move(store)), weights_(bind_weights(config_, store_)) {}

void Model::forward(std::span<const int32_t> tokens, KvCache& cache, FloatTensor& logits, ThreadPool& pool,
                    LogitsMode mode, ForwardObserver* observer, ForwardTape* tape) const {
  const JetMoeConfig& c = config_;
  const int64_t T = int64_t(tokens.size()), d = c.hidden_size, V = c.vocab_size;
  const int64_t start = cache.length();
  if (T == 0) fail("forward: no tokens given");
  for (int64_t t = 0; t < T; ++t)
    if (tokens[size_t(t)] < 0 || tokens[size_t(t)] >= V)
      fail("token id ", tokens[size_t(t)], " at position ", t, " is outside the vocabulary [0, ", V, ")");
  if (start + T > cache.capacity())
    fail("context overflow: ", start, " cached + ", T, " new tokens exceed the KV cache size ", cache.capacity());
  if (start + T > c.max_position_embeddings)
    fail("context overflow: ", start + T, " positions exceed max_position_embeddings ", c.max_position_embeddings);
  if (tape) {
    if (start != 0) fail("forward: a training forward (with a tape) needs an empty KV cache, got ", start, " cached");
    if (mode != LogitsMode::All) fail("forward: a training forward (with a tape) needs the logits of every position");
    tape->tokens.assign(tokens.begin(), tokens.end());
    tape->layers.assign(size_t(c.num_layers), LayerTape{});
  }

  auto observe = [&](const char* name, int layer, const float* data, Shape shape) {
    if (observer) observer->observe(name, layer, data, shape);
  };

  std::vector<float> x(size_t(T * d));  // residual stream [T, d]
  for (int64_t t = 0; t < T; ++t) ops::load_row(weights_.embed, tokens[size_t(t)], x.data() + t * d);
  observe("embeddings", -1, x.data(), {T, d});

  const kernels::Rope rope(c.head_dim, c.rope_theta);
  std::vector<float> normed(size_t(T * d)), branch(size_t(T * d));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[size_t(l)];
    const int layer = int(l);
    LayerTape* lt = tape ? &tape->layers[size_t(l)] : nullptr;

    ops::rmsnorm(x.data(), w.input_norm, JetMoeConfig::kBlockNormEps, T, d, normed.data());
    if (lt) { lt->attn_in = x; lt->attn_norm = normed; }
    Routing attn = mixture_of_attention(w, c, rope, normed.data(), T, cache, l, branch.data(), pool,
                                        lt ? &lt->attn : nullptr, matmul_options_);
    observe("attn_router_logits", layer, attn.logits.data(), {T, c.num_experts});
    if (lt) lt->attn.routing = std::move(attn);
    observe("attn_out", layer, branch.data(), {T, d});
    for (size_t i = 0; i < x.size(); ++i) x[i] += branch[i];

    ops::rmsnorm(x.data(), w.post_norm, JetMoeConfig::kBlockNormEps, T, d, normed.data());
    if (lt) { lt->mlp_in = x; lt->mlp_norm = normed; }
    Routing mlp = mixture_of_experts(w, c, normed.data(), T, branch.data(), pool, lt ? &lt->mlp : nullptr,
                                     matmul_options_);
    observe("mlp_router_logits", layer, mlp.logits.data(), {T, c.num_experts});
    if (lt) lt->mlp.routing = std::move(mlp);
    observe("mlp_out", layer, branch.data(), {T, d});
    for (size_t i = 0; i < x.size(); ++i) x[i] += branch[i];
    observe("hidden", layer, x.data(), {T, d});
  }
  cache.advance(T);

  const int64_t first = mode == LogitsMode::All ? 0 : T - 1;
  const int64_t rows = T - first;
  ops::rmsnorm(x.data() + first * d, weights_.final_norm, c.rms_norm_eps, rows, d, normed.data());
  if (tape) { tape->final_in = x; tape->final_norm = normed; }
  logits = FloatTensor({rows, V});
  ops::matmul_xwT(normed.data(), d, rows, weights_.lm_head, logits.data(), V, pool, matmul_options_);
  observe("logits", -1, logits.data(), {rows, V});
}

}  // namespace jetmoe
