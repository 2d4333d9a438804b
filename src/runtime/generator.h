// The generation loop: prefill the prompt, then sample and feed back one token at a time
// until EOS, the token budget, a stop string or the end of the context.
//
// The loop talks to a LogitsSource (a model with its KV cache, or a fake in tests) and,
// optionally, a TextDecoder that turns ids into streamed text. Without a decoder it works
// on ids alone (no text, no stop strings).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.h"

namespace jetmoe {

// What generation needs from a model: evaluate tokens in order, get the last one's logits.
class LogitsSource {
 public:
  virtual ~LogitsSource() = default;
  virtual int64_t vocab_size() const = 0;
  // Positions available in total (prompt + generated tokens).
  virtual int64_t context_size() const = 0;
  // Makes the evaluated sequence exactly `prompt` (a source may reuse a cached common prefix)
  // and returns the logits [V] of its last token. Throws if the prompt does not fit.
  virtual std::span<const float> start(std::span<const int32_t> prompt) = 0;
  // Appends one token and returns its logits [V].
  virtual std::span<const float> append(int32_t token) = 0;
  // Tokens of the last start() that were already evaluated and reused.
  virtual int64_t reused_prompt_tokens() const { return 0; }
};

// Turns a stream of ids into text pieces; holds back incomplete characters until complete.
class TextDecoder {
 public:
  virtual ~TextDecoder() = default;
  virtual std::string push(int32_t id) = 0;
  virtual std::string flush() = 0;
};

enum class FinishReason { Stop, Length, Eos };
// "stop", "length" or "eos" (as in OpenAI-style APIs).
const char* finish_reason_name(FinishReason reason);

struct GenerationOptions {
  int64_t max_new_tokens = -1;  // < 0: until the context is full
  bool stop_at_eos = true;
  int32_t eos_id = 2;
  std::vector<std::string> stop_strings;  // need a TextDecoder
};

struct GenerationCallbacks {
  std::function<void(int32_t id)> on_token;           // every generated id, as sampled
  std::function<void(std::string_view text)> on_text;  // text once it is final (stop strings resolved)
};

struct GenerationResult {
  // Every sampled id, including a final EOS and the tokens that spelled a stop string:
  // they are what the context now holds. `text` leaves both out.
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish_reason = FinishReason::Length;
  int64_t prompt_tokens = 0;
  int64_t reused_prompt_tokens = 0;  // of prompt_tokens, served from the cache
  double prompt_seconds = 0;         // prefill
  double generation_seconds = 0;     // everything after prefill: sampling and decoding

  int64_t generated_tokens() const { return int64_t(tokens.size()); }
  double prompt_tokens_per_second() const;
  double generation_tokens_per_second() const;
};

// Runs one generation. `decoder` may be null (ids only). Throws jetmoe::Error on an empty
// prompt, a prompt that does not fit the context, or stop strings without a decoder.
GenerationResult generate(LogitsSource& source, Sampler& sampler, std::span<const int32_t> prompt,
                          const GenerationOptions& options, TextDecoder* decoder = nullptr,
                          const GenerationCallbacks& callbacks = {});

}  // namespace jetmoe
