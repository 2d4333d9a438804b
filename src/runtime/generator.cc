#include "runtime/generator.h"

#include <chrono>

#include "core/error.h"
#include "runtime/stop_strings.h"

namespace jetmoe {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Eos: return "eos";
  }
  return "?";
}

double GenerationResult::prompt_tokens_per_second() const {
  const int64_t evaluated = prompt_tokens - reused_prompt_tokens;
  return prompt_seconds > 0 ? double(evaluated) / prompt_seconds : 0.0;
}

double GenerationResult::generation_tokens_per_second() const {
  return generation_seconds > 0 ? double(generated_tokens()) / generation_seconds : 0.0;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

GenerationResult generate(LogitsSource& source, Sampler& sampler, std::span<const int32_t> prompt,
                          const GenerationOptions& options, TextDecoder* decoder,
                          const GenerationCallbacks& callbacks) {
  if (prompt.empty()) fail("generate: the prompt is empty (it needs at least one token, e.g. BOS)");
  if (!options.stop_strings.empty() && decoder == nullptr)
    fail("generate: stop strings need a tokenizer to turn tokens into text");
  if (int64_t(prompt.size()) > source.context_size())
    fail("generate: the prompt has ", prompt.size(), " tokens but the context holds only ",
         source.context_size());

  GenerationResult result;
  result.prompt_tokens = int64_t(prompt.size());
  StopStringMatcher stops(options.stop_strings);
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    result.text += text;
    if (callbacks.on_text) callbacks.on_text(text);
  };

  const Clock::time_point prefill_start = Clock::now();
  std::span<const float> logits = source.start(prompt);
  result.prompt_seconds = seconds_since(prefill_start);
  result.reused_prompt_tokens = source.reused_prompt_tokens();

  const Clock::time_point decode_start = Clock::now();
  std::vector<int32_t> history(prompt.begin(), prompt.end());  // what the repetition penalty sees
  int64_t position = int64_t(prompt.size());
  result.finish_reason = FinishReason::Length;
  while (options.max_new_tokens < 0 || result.generated_tokens() < options.max_new_tokens) {
    const int32_t id = sampler.sample(logits, history, result.tokens);
    result.tokens.push_back(id);
    history.push_back(id);
    if (callbacks.on_token) callbacks.on_token(id);

    if (options.stop_at_eos && id == options.eos_id) {
      result.finish_reason = FinishReason::Eos;
      break;
    }
    if (decoder) {
      emit(stops.push(decoder->push(id)));
      if (stops.stopped()) {
        result.finish_reason = FinishReason::Stop;
        break;
      }
    }
    if (options.max_new_tokens >= 0 && result.generated_tokens() >= options.max_new_tokens) break;
    if (position >= source.context_size()) break;  // no room to feed the token back
    logits = source.append(id);
    ++position;
  }

  // Release what the decoder and the matcher still hold; the decoder's tail may complete a stop.
  if (decoder && !stops.stopped()) {
    emit(stops.push(decoder->flush()));
    if (stops.stopped()) result.finish_reason = FinishReason::Stop;
    emit(stops.finish());
  }
  result.generation_seconds = seconds_since(decode_start);
  return result;
}

}  // namespace jetmoe
