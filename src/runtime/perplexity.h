// Perplexity of a model on a token sequence, the way Hugging Face's "Perplexity of fixed-length
// models" recipe computes it: the sequence is cut into windows of `context` tokens that start
// every `stride` tokens; each window runs as one forward from an empty cache, and scores only the
// tokens no earlier window scored. With stride == context the windows do not overlap and every
// token but each window's first is scored; with stride < context each scored token sees at least
// context - stride tokens before it. (llama.cpp's perplexity instead scores the second half of
// fixed windows; the two agree only in the limit.)
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/parallel.h"
#include "model/model.h"

namespace jetmoe {

// Tokens [begin, end) run as one forward; tokens [first_scored, end) are scored (each from the
// logits of the token before it, inside the window).
struct PerplexityWindow {
  int64_t begin = 0, end = 0, first_scored = 0;
};

// The windows over n_tokens tokens: begins 0, stride, 2 * stride, ... until a window reaches the
// end; a window that would score nothing (a 1-token tail) is left out. Throws unless
// context >= 2 and 1 <= stride <= context.
std::vector<PerplexityWindow> perplexity_windows(int64_t n_tokens, int64_t context, int64_t stride);

struct PerplexityOptions {
  int64_t context = 0;  // tokens per window; <= 0: min(512, max_position_embeddings)
  int64_t stride = 0;   // <= 0: context (no overlap)
  DType cache_type = DType::F32;  // of the KV cache the windows attend over: F32 or F16
};

// Running totals after each window, for progress reports.
struct PerplexityProgress {
  int64_t window = 0, windows = 0;  // windows done, of
  int64_t tokens_scored = 0;
  double nll_sum = 0.0;  // natural log
  double seconds = 0.0;  // in forwards so far
};

struct PerplexityResult {
  int64_t tokens = 0;  // length of the input
  int64_t context = 0, stride = 0;
  DType cache_type = DType::F32;  // of the cache the windows ran on
  int64_t windows = 0;
  int64_t tokens_scored = 0;
  int64_t tokens_evaluated = 0;  // forwarded tokens, overlaps counted again
  double nll_sum = 0.0;
  double mean_nll = 0.0;    // nats per scored token
  double perplexity = 0.0;  // exp(mean_nll)
  double seconds = 0.0;     // in forwards
  double tokens_per_second() const { return seconds > 0 ? double(tokens_evaluated) / seconds : 0.0; }
};

// Scores `tokens` (ids in the model's vocabulary, at least two). Throws on a context above the
// model's max_position_embeddings, a bad stride, or too few tokens; messages name the option.
PerplexityResult compute_perplexity(const Model& model, std::span<const int32_t> tokens,
                                    const PerplexityOptions& options, ThreadPool& pool,
                                    const std::function<void(const PerplexityProgress&)>& on_window = {});

}  // namespace jetmoe
