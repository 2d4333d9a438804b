// OpenAI's presence and frequency penalties against their definition, written out per token,
// and their place in the sampler (generated tokens count; the prompt does not).
#include "runtime/penalties.h"

#include <gtest/gtest.h>

#include <map>

#include "core/error.h"

namespace jetmoe {
namespace {

TEST(Penalties, FollowOpenAisFormulaPerToken) {
  std::vector<Candidate> candidates = {{0, 1.0f}, {1, 2.0f}, {2, -1.0f}, {3, 0.5f}};
  const std::vector<int32_t> generated = {1, 1, 1, 2, 7};  // 7 is not a candidate
  apply_presence_frequency_penalties(candidates, generated, 0.5f, 0.25f);
  // logit - count * frequency - (count > 0) * presence
  EXPECT_FLOAT_EQ(candidates[0].logit, 1.0f);
  EXPECT_FLOAT_EQ(candidates[1].logit, 2.0f - 3 * 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(candidates[2].logit, -1.0f - 1 * 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(candidates[3].logit, 0.5f);

  // Negative values encourage repeats.
  std::vector<Candidate> again = {{1, 2.0f}};
  apply_presence_frequency_penalties(again, generated, -1.0f, -0.5f);
  EXPECT_FLOAT_EQ(again[0].logit, 2.0f + 1.5f + 1.0f);

  std::vector<Candidate> off = {{1, 2.0f}};
  apply_presence_frequency_penalties(off, generated, 0.0f, 0.0f);
  EXPECT_FLOAT_EQ(off[0].logit, 2.0f);
}

TEST(Penalties, TheSamplerCountsOnlyGeneratedTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 2.0f;
  Sampler sampler(p);
  const std::vector<float> logits = {3.0f, 2.0f};
  // Token 0 in the prompt (history) only: no penalty, greedy stays on 0.
  EXPECT_EQ(sampler.sample(logits, std::vector<int32_t>{0}, {}), 0);
  // Token 0 generated before: 3 - 2 < 2, so 1 wins.
  EXPECT_EQ(sampler.sample(logits, std::vector<int32_t>{0}, std::vector<int32_t>{0}), 1);
}

TEST(Penalties, OutOfRangeValuesAreRefused) {
  SamplingParams p;
  p.presence_penalty = 2.5f;
  EXPECT_THROW(validate_sampling_params(p), Error);
  p.presence_penalty = 0;
  p.frequency_penalty = -2.01f;
  EXPECT_THROW(validate_sampling_params(p), Error);
  p.frequency_penalty = NAN;
  EXPECT_THROW(validate_sampling_params(p), Error);
  p.frequency_penalty = -2.0f;
  EXPECT_NO_THROW(validate_sampling_params(p));
}

}  // namespace
}  // namespace jetmoe
