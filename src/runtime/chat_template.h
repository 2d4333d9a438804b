// The JetMoE-chat (Zephyr) conversation format (spec §4, P15). Rendered by plain code; no
// template language is ever evaluated. Each message becomes
//   <|role|>\n{content}</s>\n
// and the generation prompt is <|assistant|>\n. The tags are ordinary text; </s> is the EOS
// token. Tokenized with exactly one BOS at the very start, as in training.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace jetmoe {

class Tokenizer;

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// The conversation as text. Throws jetmoe::Error on an unknown role.
std::string render_chat(std::span<const ChatMessage> messages, bool add_generation_prompt);

// The conversation as ids: BOS, then the rendered text with each </s> as the EOS id. Throws
// if a message's content itself spells a special token (it would forge a turn boundary).
std::vector<int32_t> tokenize_chat(const Tokenizer& tokenizer, std::span<const ChatMessage> messages,
                                   bool add_generation_prompt);

}  // namespace jetmoe
