// The tokenizer's streaming decoder as the generation loop's TextDecoder.
#pragma once

#include "formats/tokenizer/tokenizer.h"
#include "runtime/generator.h"

namespace jetmoe {

class TokenizerTextDecoder final : public TextDecoder {
 public:
  // skip_special: leave <s>, </s> out of the text (they end or frame turns; they are not prose).
  explicit TokenizerTextDecoder(const Tokenizer& tokenizer, bool skip_special = true)
      : decoder_(tokenizer, skip_special) {}
  std::string push(int32_t id) override { return decoder_.push(id); }
  std::string flush() override { return decoder_.flush(); }

 private:
  StreamingDecoder decoder_;
};

}  // namespace jetmoe
