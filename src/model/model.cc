#include "model/model.h"

#include <algorithm>

#include "core/error.h"
#include "formats/model_files.h"
#include "kernels/ops.h"
#include "model/mixture_of_attention.h"
#include "model/mixture_of_experts.h"
#include "model/row_ranges.h"

namespace jetmoe {

std::unique_ptr<Model> Model::load(const std::string& path) {
  ModelFiles files = open_model_files(path);  // an HF-layout directory or a .gguf file
  return std::make_unique<Model>(files.config, std::move(files.store));
}

Model::Model(JetMoeConfig config, TensorStore store)
    : config_(config), store_(std::move(store)), weights_(bind_weights(config_, store_)) {}

void Model::check_input(std::span<const int32_t> tokens, const KvCache& cache, const std::string& where) const {
  const JetMoeConfig& c = config_;
  const int64_t T = int64_t(tokens.size()), V = c.vocab_size, start = cache.length();
  if (T == 0) fail(where, "no tokens given");
  if (!cache.fits(c))
    fail(where, "the KV cache was made for another model: ", cache.layers(), " layers of ", cache.row_size(),
         " values per position, this model has ", c.num_layers, " of ", c.kv_proj_size());
  for (int64_t t = 0; t < T; ++t)
    if (tokens[size_t(t)] < 0 || tokens[size_t(t)] >= V)
      fail(where, "token id ", tokens[size_t(t)], " at position ", t, " is outside the vocabulary [0, ", V, ")");
  if (start + T > cache.capacity())
    fail(where, "context overflow: ", start, " cached + ", T, " new tokens exceed the KV cache size ",
         cache.capacity());
  if (start + T > c.max_position_embeddings)
    fail(where, "context overflow: ", start + T, " positions exceed max_position_embeddings ",
         c.max_position_embeddings);
}

namespace {

// y = rmsnorm(x) * weight over T rows of the residual stream, the rows shared among the pool.
void rmsnorm_rows(const float* x, const TensorView& weight, int64_t T, float* y, ThreadPool& pool) {
  const int64_t d = weight.numel();
  for_row_ranges(pool, T, d, [&](int64_t begin, int64_t end) {
    ops::rmsnorm(x + begin * d, weight, JetMoeConfig::kBlockNormEps, end - begin, d, y + begin * d);
  });
}

// x += branch over T rows of d = branch row length (the residual connection).
void add_rows(float* x, const float* branch, int64_t T, int64_t d, ThreadPool& pool) {
  for_row_ranges(pool, T, d, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * d; i < end * d; ++i) x[i] += branch[i];
  });
}

// A taped layer moves its activations from the scratch into the tape (mixture_of_*.cc). Handing
// the scratch the buffers this tape kept from a previous forward first lets repeated training
// steps reuse their pages instead of faulting in fresh ones.
void lend_tape_buffers(LayerTape& lt, ForwardScratch& scratch) {
  scratch.q = std::move(lt.attn.queries);
  scratch.heads = std::move(lt.attn.heads);
  scratch.projected = std::move(lt.attn.projected);
  scratch.up = std::move(lt.mlp.up);
  scratch.act = std::move(lt.mlp.act);
  scratch.down = std::move(lt.mlp.down);
}

}  // namespace

std::vector<float> Model::run_blocks(std::span<const int32_t> tokens, std::span<const AttentionSegment> segments,
                                     ThreadPool& pool, ForwardObserver* observer, ForwardTape* tape) const {
  const JetMoeConfig& c = config_;
  const int64_t T = int64_t(tokens.size()), d = c.hidden_size;
  auto observe = [&](const char* name, int layer, const float* data, Shape shape) {
    if (observer) observer->observe(name, layer, data, shape);
  };

  std::vector<float> x(size_t(T * d));  // residual stream [T, d]
  for (int64_t t = 0; t < T; ++t) ops::load_row(weights_.embed, tokens[size_t(t)], x.data() + t * d);
  observe("embeddings", -1, x.data(), {T, d});

  const kernels::Rope rope(c.head_dim, c.rope_theta);
  std::vector<float> normed(size_t(T * d)), branch(size_t(T * d));
  ForwardScratch scratch;  // reused by every layer
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[size_t(l)];
    const int layer = int(l);
    LayerTape* lt = tape ? &tape->layers[size_t(l)] : nullptr;
    if (lt) lend_tape_buffers(*lt, scratch);

    rmsnorm_rows(x.data(), w.input_norm, T, normed.data(), pool);
    if (lt) { lt->attn_in = x; lt->attn_norm = normed; }
    Routing attn = mixture_of_attention(w, c, rope, normed.data(), segments, l, branch.data(), pool, scratch,
                                        lt ? &lt->attn : nullptr, matmul_options_);
    observe("attn_router_logits", layer, attn.logits.data(), {T, c.num_experts});
    if (lt) lt->attn.routing = std::move(attn);
    observe("attn_out", layer, branch.data(), {T, d});
    add_rows(x.data(), branch.data(), T, d, pool);

    rmsnorm_rows(x.data(), w.post_norm, T, normed.data(), pool);
    if (lt) { lt->mlp_in = x; lt->mlp_norm = normed; }
    Routing mlp = mixture_of_experts(w, c, normed.data(), T, branch.data(), pool, scratch,
                                     lt ? &lt->mlp : nullptr, matmul_options_);
    observe("mlp_router_logits", layer, mlp.logits.data(), {T, c.num_experts});
    if (lt) lt->mlp.routing = std::move(mlp);
    observe("mlp_out", layer, branch.data(), {T, d});
    add_rows(x.data(), branch.data(), T, d, pool);
    observe("hidden", layer, x.data(), {T, d});
  }
  return x;
}

void Model::head(const float* x, int64_t rows, std::vector<float>& normed, FloatTensor& logits,
                 ThreadPool& pool) const {
  const int64_t d = config_.hidden_size, V = config_.vocab_size;
  normed.resize(size_t(rows * d));
  ops::rmsnorm(x, weights_.final_norm, config_.rms_norm_eps, rows, d, normed.data());
  if (logits.shape != Shape{rows, V}) logits = FloatTensor({rows, V});  // every value is written below
  ops::matmul_xwT(normed.data(), d, rows, weights_.lm_head, logits.data(), V, pool, matmul_options_);
}

void Model::forward(std::span<const int32_t> tokens, KvCache& cache, FloatTensor& logits, ThreadPool& pool,
                    LogitsMode mode, ForwardObserver* observer, ForwardTape* tape) const {
  const int64_t T = int64_t(tokens.size()), d = config_.hidden_size;
  if (tokens.empty()) fail("forward: no tokens given");
  check_input(tokens, cache, "");
  if (tape) {
    if (cache.length() != 0)
      fail("forward: a training forward (with a tape) needs an empty KV cache, got ", cache.length(), " cached");
    if (mode != LogitsMode::All) fail("forward: a training forward (with a tape) needs the logits of every position");
    tape->tokens.assign(tokens.begin(), tokens.end());
    tape->layers.resize(size_t(config_.num_layers));  // a previous forward's buffers are reused
  }

  const AttentionSegment whole{T, &cache};
  std::vector<float> x = run_blocks(tokens, std::span(&whole, 1), pool, observer, tape);
  cache.advance(T);

  const int64_t first = mode == LogitsMode::All ? 0 : T - 1;
  std::vector<float> normed;
  head(x.data() + first * d, T - first, normed, logits, pool);
  if (tape) {
    tape->final_in = std::move(x);
    tape->final_norm = std::move(normed);
  }
  if (observer) observer->observe("logits", -1, logits.data(), logits.shape);
}

void Model::forward_batch(std::span<const SequenceChunk> chunks, FloatTensor& last_logits, ThreadPool& pool) const {
  const int64_t B = int64_t(chunks.size()), d = config_.hidden_size;
  if (B == 0) fail("forward_batch: no sequences given");
  // Everything is checked before any cache is written.
  for (int64_t b = 0; b < B; ++b) {
    const SequenceChunk& chunk = chunks[size_t(b)];
    const std::string where = str_cat("forward_batch: chunk ", b, " of ", B, ": ");
    if (!chunk.cache) fail(where, "no KV cache given");
    check_input(chunk.tokens, *chunk.cache, where);
    for (int64_t other = 0; other < b; ++other)
      if (chunks[size_t(other)].cache == chunk.cache)
        fail(where, "shares its KV cache with chunk ", other, " (one sequence per cache)");
  }

  std::vector<int32_t> tokens;  // every chunk's tokens, stacked
  std::vector<AttentionSegment> segments;
  std::vector<int64_t> last_rows;
  for (const SequenceChunk& chunk : chunks) {
    tokens.insert(tokens.end(), chunk.tokens.begin(), chunk.tokens.end());
    segments.push_back({int64_t(chunk.tokens.size()), chunk.cache});
    last_rows.push_back(int64_t(tokens.size()) - 1);
  }
  const std::vector<float> x = run_blocks(tokens, segments, pool, nullptr, nullptr);
  for (const SequenceChunk& chunk : chunks) chunk.cache->advance(int64_t(chunk.tokens.size()));

  // The head only sees the last row of each chunk.
  std::vector<float> last(size_t(B * d)), normed;
  for (int64_t b = 0; b < B; ++b)
    std::copy_n(x.data() + last_rows[size_t(b)] * d, d, last.data() + b * d);
  head(last.data(), B, normed, last_logits, pool);
}

}  // namespace jetmoe
