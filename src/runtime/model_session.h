// A Model with its own KV cache, as a LogitsSource for the generation loop. Remembers which
// tokens the cache holds so that a new prompt sharing a prefix with the previous sequence
// (the next turn of a chat) only evaluates the new part.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/generator.h"

namespace jetmoe {

class ModelSession final : public LogitsSource {
 public:
  // context_size <= 0 or beyond the model's max_position_embeddings is clamped to the latter;
  // cache_type is the KV cache's element type (is_kv_cache_type: F32 or F16).
  ModelSession(const Model& model, ThreadPool& pool, int64_t context_size = 0, DType cache_type = DType::F32);

  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t context_size() const override { return cache_.capacity(); }
  DType cache_type() const { return cache_.type(); }
  std::span<const float> start(std::span<const int32_t> prompt) override;
  std::span<const float> append(int32_t token) override;
  int64_t reused_prompt_tokens() const override { return reused_; }

  // Forgets the cached sequence.
  void reset();
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  // Evaluates `tokens` after the cached ones; keeps tokens_ in step with the cache.
  std::span<const float> evaluate(std::span<const int32_t> tokens);

  const Model& model_;
  ThreadPool& pool_;
  KvCache cache_;
  std::vector<int32_t> tokens_;  // what the cache holds, position by position
  FloatTensor logits_;           // [1, V] of the last evaluated token
  int64_t reused_ = 0;
};

}  // namespace jetmoe
