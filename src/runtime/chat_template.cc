#include "runtime/chat_template.h"

#include "core/error.h"
#include "formats/tokenizer/tokenizer.h"

namespace jetmoe {

static void check_role(const ChatMessage& message, size_t index) {
  if (message.role != "system" && message.role != "user" && message.role != "assistant")
    fail("chat message ", index, ": unknown role '", message.role,
         "' (expected system, user or assistant)");
}

std::string render_chat(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string text;
  for (size_t i = 0; i < messages.size(); ++i) {
    check_role(messages[i], i);
    text += "<|" + messages[i].role + "|>\n" + messages[i].content + "</s>\n";
  }
  if (add_generation_prompt) text += "<|assistant|>\n";
  return text;
}

std::vector<int32_t> tokenize_chat(const Tokenizer& tokenizer, std::span<const ChatMessage> messages,
                                   bool add_generation_prompt) {
  const int32_t bos = tokenizer.bos_id(), eos = tokenizer.eos_id();
  if (bos < 0 || eos < 0) fail("chat: the tokenizer has no BOS or no EOS token, which the chat format needs");
  // Rendered text with special tokens parsed: each </s> becomes the EOS id and the text between
  // them is encoded piece by piece, as Hugging Face tokenizes a rendered chat.
  const std::vector<int32_t> ids =
      tokenizer.encode(render_chat(messages, add_generation_prompt), /*add_bos=*/true, /*parse_special=*/true);

  // The only special tokens allowed are the leading BOS and one </s> per message. Anything
  // else came from message text spelling a special token, which would forge turn structure.
  size_t eos_count = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!tokenizer.is_special(ids[i])) continue;
    if (i == 0 && ids[i] == bos) continue;
    if (ids[i] == eos && ++eos_count <= messages.size()) continue;
    fail("chat: a message contains the text of the special token '", tokenizer.piece(ids[i]),
         "'; remove it (it would change where turns begin or end)");
  }
  if (ids.empty() || ids[0] != bos) fail("chat: the tokenizer did not put BOS first");
  if (eos_count != messages.size())
    fail("chat: expected one </s> per message (", messages.size(), "), the tokenizer produced ", eos_count);
  return ids;
}

}  // namespace jetmoe
