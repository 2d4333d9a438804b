#include "runtime/model_session.h"

#include <algorithm>

#include "core/error.h"

namespace jetmoe {

static int64_t clamp_context(const JetMoeConfig& config, int64_t requested) {
  if (requested <= 0) return config.max_position_embeddings;
  return std::min(requested, config.max_position_embeddings);
}

ModelSession::ModelSession(const Model& model, ThreadPool& pool, int64_t context_size, DType cache_type)
    : model_(model), pool_(pool), cache_(model.make_cache(clamp_context(model.config(), context_size), cache_type)) {}

void ModelSession::reset() {
  cache_.clear();
  tokens_.clear();
  reused_ = 0;
}

std::span<const float> ModelSession::start(std::span<const int32_t> prompt) {
  if (prompt.empty()) fail("model session: empty prompt");
  if (int64_t(prompt.size()) > context_size())
    fail("the prompt has ", prompt.size(), " tokens but the context holds only ", context_size(),
         " (see --ctx-size)");
  // Reuse the common prefix, but always evaluate at least the last token to get its logits.
  const auto mismatch = std::mismatch(tokens_.begin(), tokens_.end(), prompt.begin(), prompt.end());
  const size_t common = std::min(size_t(mismatch.first - tokens_.begin()), prompt.size() - 1);
  cache_.truncate(int64_t(common));
  tokens_.resize(common);
  reused_ = int64_t(common);
  return evaluate(prompt.subspan(common));
}

std::span<const float> ModelSession::append(int32_t token) {
  return evaluate(std::span<const int32_t>(&token, 1));
}

std::span<const float> ModelSession::evaluate(std::span<const int32_t> tokens) {
  try {
    model_.forward(tokens, cache_, logits_, pool_, LogitsMode::Last);
  } catch (...) {
    // A failed forward must not leave the cache claiming positions tokens_ does not know.
    if (cache_.length() > int64_t(tokens_.size())) cache_.truncate(int64_t(tokens_.size()));
    throw;
  }
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  const int64_t V = model_.config().vocab_size;
  return std::span<const float>(logits_.data() + (int64_t(logits_.values.size()) - V), size_t(V));
}

}  // namespace jetmoe
