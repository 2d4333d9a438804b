// Log-probabilities of tokens as OpenAI reports them: from the model's own distribution
// (softmax of the raw logits), before penalties, filters and temperature.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "serve/job.h"

namespace jetmoe {
class Tokenizer;
}

namespace jetmoe::serve {

// The logprob of `chosen` and the `top_n` most likely tokens (ties: lower id first).
SampledToken token_logprobs(std::span<const float> logits, int32_t chosen, int top_n);

// A token as text for logprobs: '▁' becomes a space, a byte piece <0xAB> the byte itself
// (which may be part of a character, so the result need not be valid UTF-8).
std::string token_text(const Tokenizer& tokenizer, int32_t id);

}  // namespace jetmoe::serve
