#include "serve/slot.h"

#include <algorithm>

#include "core/error.h"
#include "serve/token_logprobs.h"

namespace jetmoe::serve {

Slot::Slot(const Model& model, const Tokenizer& tokenizer, int64_t context_size, DType cache_type, Metrics& metrics)
    : tokenizer_(tokenizer),
      eos_id_(int32_t(model.config().eos_token_id)),
      metrics_(metrics),
      cache_(model.make_cache(context_size, cache_type)) {}

size_t Slot::reusable_prefix(std::span<const int32_t> prompt) const {
  if (prompt.empty()) return 0;
  const auto mismatch = std::mismatch(tokens_.begin(), tokens_.end(), prompt.begin(), prompt.end());
  return std::min(size_t(mismatch.first - tokens_.begin()), prompt.size() - 1);
}

void Slot::assign(std::shared_ptr<Job> job) {
  JM_CHECK(!busy());
  const JobSpec& spec = job->spec();
  JM_CHECK(!spec.prompt.empty() && int64_t(spec.prompt.size()) <= context_size());
  const size_t reuse = reusable_prefix(spec.prompt);
  cache_.truncate(int64_t(reuse));
  tokens_.resize(reuse);
  prompt_done_ = reuse;
  cached_prompt_tokens_ = int64_t(reuse);
  metrics_.add_reused_prompt_tokens(int64_t(reuse));

  sampler_.emplace(spec.sampling);
  decoder_.emplace(tokenizer_, /*skip_special=*/true);
  if (spec.continues_prompt_text)
    for (const int32_t id : spec.prompt) decoder_->push(id);  // the prompt's text is the client's already
  stops_.emplace(spec.stop);
  history_.assign(spec.prompt.begin(), spec.prompt.end());
  generated_.clear();
  job_ = std::move(job);
}

std::span<const int32_t> Slot::next_input(int prefill_chunk) const {
  JM_CHECK(busy());
  if (prefilling()) {
    const std::vector<int32_t>& prompt = job_->spec().prompt;
    const size_t n = std::min(prompt.size() - prompt_done_, size_t(prefill_chunk));
    return std::span<const int32_t>(prompt).subspan(prompt_done_, n);
  }
  return std::span<const int32_t>(&next_token_, 1);
}

bool Slot::consume(size_t evaluated, std::span<const float> logits) {
  JM_CHECK(busy());
  const bool was_prefilling = prefilling();
  const std::span<const int32_t> input = next_input(int(evaluated));
  JM_CHECK(input.size() == evaluated);
  tokens_.insert(tokens_.end(), input.begin(), input.end());
  if (was_prefilling) {
    prompt_done_ += evaluated;
    if (prefilling()) return false;  // more prompt to go; these logits are not needed
  }
  try {
    sample_next(logits);
  } catch (const std::exception& e) {
    if (busy()) cancel(JobStatus::Failed, e.what());
  }
  return true;
}

void Slot::sample_next(std::span<const float> logits) {
  const JobSpec& spec = job_->spec();
  const int32_t id = sampler_->sample(logits, history_, generated_);
  history_.push_back(id);
  generated_.push_back(id);

  JobEvent event;
  event.token = spec.top_logprobs >= 0 ? token_logprobs(logits, id, spec.top_logprobs) : SampledToken{id, 0, {}};
  if (!spec.ignore_eos && id == eos_id_) {
    job_->push(std::move(event));
    end(FinishReason::Eos);
    return;
  }
  event.text = stops_->push(decoder_->push(id));
  job_->push(std::move(event));
  if (stops_->stopped()) return end(FinishReason::Stop);
  if (int64_t(generated_.size()) >= spec.max_tokens) return end(FinishReason::Length);
  if (cache_.length() >= cache_.capacity()) return end(FinishReason::Length);  // no room to feed it back
  next_token_ = id;
}

JobOutcome Slot::base_outcome() const {
  JobOutcome outcome;
  outcome.prompt_tokens = int64_t(job_->spec().prompt.size());
  outcome.cached_prompt_tokens = cached_prompt_tokens_;
  outcome.generated_tokens = int64_t(generated_.size());
  return outcome;
}

void Slot::end(FinishReason reason) {
  // Release what the decoder and the stop matcher still hold; the decoder's tail may
  // complete a stop string.
  std::string tail;
  if (!stops_->stopped()) {
    tail = stops_->push(decoder_->flush());
    if (stops_->stopped()) reason = FinishReason::Stop;
    tail += stops_->finish();
  }
  if (!tail.empty()) job_->push(JobEvent{std::nullopt, std::move(tail)});
  JobOutcome outcome = base_outcome();
  outcome.finish_reason = reason;
  job_->end(std::move(outcome));
  metrics_.count_request("finished");
  job_.reset();
}

void Slot::fail(const std::string& message) {
  // A failed forward must not leave the cache claiming positions tokens_ does not know.
  if (cache_.length() > int64_t(tokens_.size())) cache_.truncate(int64_t(tokens_.size()));
  cancel(JobStatus::Failed, message);
}

void Slot::cancel(JobStatus status, const std::string& message) {
  JM_CHECK(busy());
  JobOutcome outcome = base_outcome();
  outcome.status = status;
  outcome.error = message;
  job_->end(std::move(outcome));
  metrics_.count_request(status == JobStatus::Failed ? "failed" : "cancelled");
  job_.reset();
}

}  // namespace jetmoe::serve
