// POST /v1/completions and /v1/chat/completions bodies, read and checked into what the
// engine needs. Every problem is an ApiError (400, or 404 for an unknown model) that names
// the field, so a client can fix its request.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/chat_template.h"
#include "runtime/sampler.h"

namespace jetmoe {
class Tokenizer;
}

namespace jetmoe::serve {

enum class Endpoint { Completions, ChatCompletions };

// OpenAI accepts at most 20 alternatives per token.
inline constexpr int kMaxTopLogprobs = 20;

struct RequestLimits {
  std::string model_id;        // what "model" must say, if given
  int64_t context_size = 0;    // positions per slot
  int32_t vocab_size = 0;
  int64_t max_tokens_limit = 0;
  int max_stop_strings = 0;
  int max_stop_bytes = 0;
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::vector<int32_t> prompt;
  SamplingParams sampling;        // seed still to be resolved when `seed` is empty
  std::optional<uint64_t> seed;
  int64_t max_tokens = 0;
  std::vector<std::string> stop;  // the client's, plus the chat turn tags for chat
  bool ignore_eos = false;        // llama.cpp's extension
  bool stream = false;
  bool include_usage = false;
  int top_logprobs = -1;          // -1: no logprobs
};

// The messages of a chat request (roles system/developer, user, assistant; text content as a
// string or as parts of type "text").
std::vector<ChatMessage> parse_chat_messages(const nlohmann::json& body);

CompletionRequest parse_completion_request(const nlohmann::json& body, Endpoint endpoint,
                                           const Tokenizer& tokenizer, const RequestLimits& limits);

}  // namespace jetmoe::serve
