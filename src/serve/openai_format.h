// Responses in the OpenAI wire format, built from a job's events: whole responses
// (chat.completion, text_completion) and server-sent-event chunks for streaming
// (chat.completion.chunk; text_completion chunks), with usage and logprobs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/completion_request.h"
#include "serve/job.h"

namespace jetmoe {
class Tokenizer;
}

namespace jetmoe::serve {

struct ResponseMeta {
  std::string id;       // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
  Endpoint endpoint = Endpoint::Completions;
  bool logprobs = false;
};

// "stop" (EOS or a stop string) or "length".
const char* openai_finish_reason(FinishReason reason);
nlohmann::json usage_json(const JobOutcome& outcome);
// One SSE event: "data: <json>\n\n".
std::string sse_event(const nlohmann::json& payload);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// Gathers events into one non-streamed response.
class CompletionBuilder {
 public:
  CompletionBuilder(const ResponseMeta& meta, const Tokenizer& tokenizer) : meta_(meta), tokenizer_(tokenizer) {}
  void add(const JobEvent& event);
  nlohmann::json response(const JobOutcome& outcome) const;

 private:
  const ResponseMeta meta_;
  const Tokenizer& tokenizer_;
  std::string text_;
  std::vector<JobEvent> tokens_;  // events carrying a token, for logprobs
  std::vector<size_t> text_offsets_;
};

// Turns events into SSE text as they arrive.
class StreamEncoder {
 public:
  StreamEncoder(const ResponseMeta& meta, const Tokenizer& tokenizer, bool include_usage)
      : meta_(meta), tokenizer_(tokenizer), include_usage_(include_usage) {}
  // The first event: for chat, the assistant role with empty content.
  std::string begin();
  // "" when the event carries nothing to send (a token whose text is still held back, without logprobs).
  std::string event(const JobEvent& event);
  // The chunk with finish_reason, the usage chunk when asked for, and [DONE]; or an error event.
  std::string end(const JobOutcome& outcome);

 private:
  nlohmann::json chunk(nlohmann::json choice) const;

  const ResponseMeta meta_;
  const Tokenizer& tokenizer_;
  const bool include_usage_;
  size_t text_bytes_ = 0;
};

}  // namespace jetmoe::serve
