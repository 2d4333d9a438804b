// One generation request as the engine sees it, and the channel its results travel back on:
// the engine thread pushes events (a sampled token, text that became final) and finally an
// outcome; the HTTP thread that owns the request waits for them, and may cancel at any time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/generator.h"
#include "runtime/sampler.h"

namespace jetmoe::serve {

struct JobSpec {
  std::vector<int32_t> prompt;  // ids, BOS included; never empty
  SamplingParams sampling;      // seed resolved
  int64_t max_tokens = 16;      // >= 1
  std::vector<std::string> stop;
  bool ignore_eos = false;
  // The text continues the prompt's (a completion): the first word keeps its leading space,
  // as in decode(prompt + generated). A chat reply starts fresh instead.
  bool continues_prompt_text = false;
  int top_logprobs = -1;        // -1: no logprobs; n >= 0: the token's and the n most likely
};

struct TokenLogprob {
  int32_t id;
  float logprob;  // natural log of the model's probability (softmax of the raw logits)
};

struct SampledToken {
  int32_t id;
  float logprob = 0;               // set when logprobs were asked for
  std::vector<TokenLogprob> top;   // the top_logprobs most likely, most likely first
};

struct JobEvent {
  std::optional<SampledToken> token;  // absent for text released at the end
  std::string text;                   // text that became final now (may be empty)
};

enum class JobStatus { Finished, Cancelled, Failed };

struct JobOutcome {
  JobStatus status = JobStatus::Finished;
  FinishReason finish_reason = FinishReason::Length;
  std::string error;                // for Failed
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0; // of prompt_tokens, reused from the slot's KV cache
  int64_t generated_tokens = 0;     // every sampled id, EOS and stop-string tokens included
};

class Job {
 public:
  explicit Job(JobSpec spec) : spec_(std::move(spec)) {}
  const JobSpec& spec() const { return spec_; }

  // --- the requester's side ---
  // Asks the engine to drop the job; it stops within one engine step.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  // Waits up to `timeout` for news and appends the events that arrived to `out`. Returns true
  // once the job has ended and every event was handed out; outcome() is then final.
  bool wait(std::vector<JobEvent>& out, std::chrono::milliseconds timeout);
  JobOutcome outcome() const;

  // --- the engine's side ---
  void push(JobEvent event);
  void end(JobOutcome outcome);
  bool ended() const;

 private:
  const JobSpec spec_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<JobEvent> events_;
  bool ended_ = false;
  JobOutcome outcome_;
};

}  // namespace jetmoe::serve
