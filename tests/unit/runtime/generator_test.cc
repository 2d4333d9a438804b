// The generation loop and stop strings, driven by a fake model that "predicts" a scripted
// sequence and a fake decoder with a fixed id -> text table.
#include "runtime/generator.h"

#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "runtime/stop_strings.h"

namespace jetmoe {
namespace {

// Predicts script[i] after the prompt and i generated tokens (as a one-hot logits row).
class ScriptedSource : public LogitsSource {
 public:
  ScriptedSource(std::vector<int32_t> script, int64_t vocab, int64_t context)
      : script_(std::move(script)), vocab_(vocab), context_(context), logits_(size_t(vocab)) {}

  int64_t vocab_size() const override { return vocab_; }
  int64_t context_size() const override { return context_; }
  std::span<const float> start(std::span<const int32_t> prompt) override {
    prompt_.assign(prompt.begin(), prompt.end());
    fed_.clear();
    return predict();
  }
  std::span<const float> append(int32_t token) override {
    EXPECT_LT(int64_t(prompt_.size() + fed_.size()), context_) << "fed past the context";
    fed_.push_back(token);
    return predict();
  }

  std::vector<int32_t> prompt_, fed_;

 private:
  std::span<const float> predict() {
    std::fill(logits_.begin(), logits_.end(), 0.0f);
    logits_[size_t(script_[fed_.size() % script_.size()])] = 10.0f;
    return logits_;
  }
  std::vector<int32_t> script_;
  int64_t vocab_, context_;
  std::vector<float> logits_;
};

class TableDecoder : public TextDecoder {
 public:
  explicit TableDecoder(std::map<int32_t, std::string> table) : table_(std::move(table)) {}
  std::string push(int32_t id) override { return table_.at(id); }
  std::string flush() override { return {}; }

 private:
  std::map<int32_t, std::string> table_;
};

Sampler greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return Sampler(p);
}

// ids 3.. spell "Hel", "lo", " wo", "rld", "!", "\n"; 2 = EOS.
const std::map<int32_t, std::string> kPieces = {{2, "</s>"}, {3, "Hel"}, {4, "lo"},  {5, " wo"},
                                                {6, "rld"},  {7, "!"},   {8, "\n"}};

struct Outcome {
  GenerationResult result;
  std::vector<std::string> texts;  // what on_text saw, piece by piece
  std::vector<int32_t> ids;        // what on_token saw
};

Outcome run(ScriptedSource& source, const GenerationOptions& options, bool with_decoder = true) {
  Sampler sampler = greedy();
  TableDecoder decoder(kPieces);
  Outcome r;
  GenerationCallbacks callbacks;
  callbacks.on_text = [&](std::string_view t) { r.texts.emplace_back(t); };
  callbacks.on_token = [&](int32_t id) { r.ids.push_back(id); };
  const std::vector<int32_t> prompt = {1, 3};
  r.result = generate(source, sampler, prompt, options, with_decoder ? &decoder : nullptr, callbacks);
  return r;
}

std::string joined(const std::vector<std::string>& pieces) {
  std::string s;
  for (const std::string& p : pieces) s += p;
  return s;
}

TEST(Generator, StopsOnAStopStringSpanningTokens) {
  ScriptedSource source({3, 4, 5, 6, 7, 8}, 16, 100);
  GenerationOptions options;
  options.stop_strings = {"o world"};  // "lo" + " wo" + "rld": spans three tokens
  const Outcome r = run(source, options);
  EXPECT_EQ(r.result.finish_reason, FinishReason::Stop);
  EXPECT_EQ(r.result.text, "Hell");
  EXPECT_EQ(joined(r.texts), "Hell");
  // The tokens that spelled the stop string were generated and stay in the result.
  EXPECT_EQ(r.result.tokens, (std::vector<int32_t>{3, 4, 5, 6}));
  EXPECT_EQ(r.ids, r.result.tokens);
  EXPECT_EQ(source.prompt_, (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(source.fed_, (std::vector<int32_t>{3, 4, 5}));  // the last one is never fed back
}

TEST(Generator, HoldsBackAPossibleStopThenReleasesIt) {
  ScriptedSource source({3, 4, 5, 6, 7, 2}, 16, 100);
  GenerationOptions options;
  options.stop_strings = {"lo wx"};  // "lo wo" diverges at the last letter
  const Outcome r = run(source, options);
  EXPECT_EQ(r.result.finish_reason, FinishReason::Eos);
  EXPECT_EQ(r.result.text, "Hello world!");
  EXPECT_EQ(joined(r.texts), "Hello world!");
  // "l", then "lo", then nothing of "lo wo" leaves until the next letter rules the stop out.
  EXPECT_EQ(r.texts, (std::vector<std::string>{"He", "l", "lo wo", "rld", "!"}));
  EXPECT_EQ(r.result.tokens.back(), 2);  // EOS is kept in the ids, not in the text
}

TEST(Generator, StopsAtEosUnlessToldNotTo) {
  ScriptedSource source({3, 2, 4}, 16, 100);
  GenerationOptions options;
  Outcome r = run(source, options);
  EXPECT_EQ(r.result.finish_reason, FinishReason::Eos);
  EXPECT_EQ(r.result.tokens, (std::vector<int32_t>{3, 2}));
  EXPECT_EQ(r.result.text, "Hel");

  options.stop_at_eos = false;
  options.max_new_tokens = 5;
  ScriptedSource again({3, 2, 4}, 16, 100);
  r = run(again, options);
  EXPECT_EQ(r.result.finish_reason, FinishReason::Length);
  EXPECT_EQ(r.result.tokens, (std::vector<int32_t>{3, 2, 4, 3, 2}));
}

TEST(Generator, StopsOnTheTokenBudget) {
  ScriptedSource source({3, 4, 5, 6}, 16, 100);
  GenerationOptions options;
  options.max_new_tokens = 3;
  const Outcome r = run(source, options);
  EXPECT_EQ(r.result.finish_reason, FinishReason::Length);
  EXPECT_EQ(r.result.tokens, (std::vector<int32_t>{3, 4, 5}));
  EXPECT_EQ(r.result.text, "Hello wo");
  EXPECT_EQ(source.fed_.size(), 2u);

  ScriptedSource none({3}, 16, 100);
  options.max_new_tokens = 0;
  EXPECT_TRUE(run(none, options).result.tokens.empty());
}

TEST(Generator, StopsWhenTheContextIsFull) {
  // Context 6, prompt 2: four positions to feed back, so five tokens can be sampled.
  ScriptedSource source({3, 4, 5, 6, 7, 8}, 16, 6);
  GenerationOptions options;
  const Outcome r = run(source, options, /*with_decoder=*/false);
  EXPECT_EQ(r.result.finish_reason, FinishReason::Length);
  EXPECT_EQ(r.result.tokens, (std::vector<int32_t>{3, 4, 5, 6, 7}));
  EXPECT_EQ(source.fed_.size(), 4u);
  EXPECT_TRUE(r.result.text.empty());  // no decoder: ids only
  EXPECT_TRUE(r.texts.empty());
}

TEST(Generator, RefusesWhatItCannotDo) {
  ScriptedSource source({3}, 16, 100);
  GenerationOptions options;
  options.stop_strings = {"x"};
  EXPECT_THROW(run(source, options, /*with_decoder=*/false), Error);

  ScriptedSource tiny({3}, 16, 1);
  EXPECT_THROW(run(tiny, GenerationOptions{}), Error);  // a 2-token prompt in a 1-token context

  Sampler sampler = greedy();
  EXPECT_THROW(generate(source, sampler, {}, GenerationOptions{}), Error);
}

TEST(StopStringMatcher, ReleasesOnlyWhatCannotStartAStop) {
  StopStringMatcher m({"</s>", "\n\nUser:"});
  EXPECT_EQ(m.push("Hi <"), "Hi ");  // "<" may start "</s>"
  EXPECT_EQ(m.held(), 1u);
  EXPECT_EQ(m.push("b>"), "<b>");
  EXPECT_EQ(m.push("ok\n"), "ok");
  EXPECT_EQ(m.push("\nUs"), "");     // "\n\nUs" may still become "\n\nUser:"
  EXPECT_EQ(m.push("e"), "");
  EXPECT_EQ(m.push("d"), "\n\nUsed");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.push("!</"), "!");
  EXPECT_EQ(m.finish(), "</");       // generation ended without the stop: release the tail
}

TEST(StopStringMatcher, CutsAtTheStopAndIgnoresTheRest) {
  StopStringMatcher m({"STOP", "END"});
  EXPECT_EQ(m.push("abcST"), "abc");
  EXPECT_EQ(m.push("OPdef END"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched(), "STOP");
  EXPECT_EQ(m.push("more"), "");
  EXPECT_EQ(m.finish(), "");

  StopStringMatcher whole({"xy"});
  EXPECT_EQ(whole.push("axyb"), "a");  // a stop inside one piece
  EXPECT_EQ(whole.matched(), "xy");

  StopStringMatcher earliest({"cd", "bc"});
  EXPECT_EQ(earliest.push("abcd"), "a");
  EXPECT_EQ(earliest.matched(), "bc");

  EXPECT_THROW(StopStringMatcher({""}), Error);
}

}  // namespace
}  // namespace jetmoe
