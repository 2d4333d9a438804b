#include "runtime/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "model/loss.h"

namespace jetmoe {

namespace {

constexpr int64_t kDefaultContext = 512;

using Clock = std::chrono::steady_clock;

}  // namespace

std::vector<PerplexityWindow> perplexity_windows(int64_t n_tokens, int64_t context, int64_t stride) {
  if (context < 2) fail("perplexity: context ", context, " is too short; a window needs at least 2 tokens");
  if (stride < 1 || stride > context)
    fail("perplexity: stride ", stride, " must be between 1 and the context (", context, ")");
  std::vector<PerplexityWindow> windows;
  int64_t scored_until = 0;  // tokens before this index are scored already
  for (int64_t begin = 0; begin < n_tokens; begin += stride) {
    const int64_t end = std::min(begin + context, n_tokens);
    // A window's first token has no context inside the window, so it is never scored there;
    // a window left with nothing to score (a 1-token tail) is not run.
    const int64_t first_scored = std::max(scored_until, begin + 1);
    if (first_scored < end) windows.push_back({begin, end, first_scored});
    scored_until = end;
    if (end == n_tokens) break;
  }
  return windows;
}

PerplexityResult compute_perplexity(const Model& model, std::span<const int32_t> tokens,
                                    const PerplexityOptions& options, ThreadPool& pool,
                                    const std::function<void(const PerplexityProgress&)>& on_window) {
  const JetMoeConfig& config = model.config();
  const int64_t max_context = config.max_position_embeddings;
  const int64_t context = options.context > 0 ? options.context : std::min(kDefaultContext, max_context);
  if (context > max_context)
    fail("perplexity: context ", context, " exceeds the model's max_position_embeddings (", max_context, ")");
  const int64_t stride = options.stride > 0 ? options.stride : context;
  const int64_t n = int64_t(tokens.size());
  if (n < 2) fail("perplexity: the text is ", n, " token", n == 1 ? "" : "s", "; at least 2 are needed to score one");

  PerplexityResult result;
  result.tokens = n;
  result.context = context;
  result.stride = stride;
  const std::vector<PerplexityWindow> windows = perplexity_windows(n, context, stride);
  result.windows = int64_t(windows.size());

  KvCache cache = model.make_cache(context, options.cache_type);
  result.cache_type = cache.type();
  FloatTensor logits;
  std::vector<int64_t> targets;
  PerplexityProgress progress;
  progress.windows = result.windows;
  for (const PerplexityWindow& w : windows) {
    const std::span<const int32_t> window = tokens.subspan(size_t(w.begin), size_t(w.end - w.begin));
    cache.clear();
    const auto start = Clock::now();
    model.forward(window, cache, logits, pool, LogitsMode::All);
    result.seconds += std::chrono::duration<double>(Clock::now() - start).count();
    // Targets aligned with the window (logits[t] scores targets[t + 1]); -1 masks a token.
    targets.assign(window.begin(), window.end());
    std::fill(targets.begin(), targets.begin() + (w.first_scored - w.begin), -1);
    int64_t count = 0;
    result.nll_sum += next_token_nll_sum(logits, targets, &count);
    result.tokens_scored += count;
    result.tokens_evaluated += int64_t(window.size());
    if (on_window) {
      ++progress.window;
      progress.tokens_scored = result.tokens_scored;
      progress.nll_sum = result.nll_sum;
      progress.seconds = result.seconds;
      on_window(progress);
    }
  }
  if (result.tokens_scored == 0) fail("perplexity: no token was scored");  // unreachable for n >= 2
  result.mean_nll = result.nll_sum / double(result.tokens_scored);
  result.perplexity = std::exp(result.mean_nll);
  return result;
}

}  // namespace jetmoe
