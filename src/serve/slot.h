// A slot: one sequence the engine decodes, with its own KV cache. It runs one job at a time:
// prefill its prompt chunk by chunk, then sample and feed back one token per engine step,
// streaming events to the job, until EOS, a stop string, max_tokens or a full context.
// After a job the cache keeps its sequence, so a next prompt sharing a prefix (the next turn
// of a chat) only evaluates what is new.
//
// The engine drives it in two halves per step, around one forward over all busy slots at once:
// next_input() says what to evaluate, consume() takes the logits of the last evaluated position.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "formats/tokenizer/tokenizer.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/stop_strings.h"
#include "serve/job.h"
#include "serve/metrics.h"

namespace jetmoe::serve {

class Slot {
 public:
  // The KV cache holds context_size positions of cache_type (F32 or F16).
  Slot(const Model& model, const Tokenizer& tokenizer, int64_t context_size, DType cache_type, Metrics& metrics);

  bool busy() const { return job_ != nullptr; }
  const Job* job() const { return job_.get(); }
  int64_t context_size() const { return cache_.capacity(); }
  int64_t used_positions() const { return cache_.length(); }
  size_t cache_bytes() const { return cache_.bytes(); }
  bool prefilling() const { return busy() && prompt_done_ < job_->spec().prompt.size(); }

  // How many leading tokens of `prompt` the cache already holds, leaving at least the last
  // prompt token to evaluate (its logits pick the first new token).
  size_t reusable_prefix(std::span<const int32_t> prompt) const;
  // Takes a job whose prompt fits the context (checked when the request was read).
  void assign(std::shared_ptr<Job> job);

  // What to evaluate in this step: up to `prefill_chunk` prompt tokens while prefilling,
  // then the token sampled last. Valid until consume().
  std::span<const int32_t> next_input(int prefill_chunk) const;
  KvCache& cache() { return cache_; }
  // After the model appended next_input() to the cache: `logits` [V] of its last position.
  // Returns true if a token was sampled.
  bool consume(size_t evaluated, std::span<const float> logits);

  // The forward pass threw: the cache is rolled back and the job fails.
  void fail(const std::string& message);
  // The requester went away, or the server is stopping.
  void cancel(JobStatus status, const std::string& message = "");

 private:
  void sample_next(std::span<const float> logits);
  void end(FinishReason reason);
  JobOutcome base_outcome() const;

  const Tokenizer& tokenizer_;
  const int32_t eos_id_;
  Metrics& metrics_;
  KvCache cache_;
  std::vector<int32_t> tokens_;  // what the cache holds, position by position

  // The current job, and its state.
  std::shared_ptr<Job> job_;
  size_t prompt_done_ = 0;       // prompt tokens in the cache
  int64_t cached_prompt_tokens_ = 0;
  std::optional<Sampler> sampler_;
  std::optional<StreamingDecoder> decoder_;
  std::optional<StopStringMatcher> stops_;
  std::vector<int32_t> history_;    // prompt + generated: what the repetition penalty sees
  std::vector<int32_t> generated_;  // what presence/frequency penalties count
  int32_t next_token_ = 0;          // sampled, fed in the next step
};

}  // namespace jetmoe::serve
