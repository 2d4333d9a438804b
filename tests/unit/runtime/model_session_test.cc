// ModelSession + generate() on the tiny HF reference checkpoint: greedy decoding reproduces the
// tokens HF's own greedy loop chose, a reused prompt prefix gives the same logits as a fresh
// evaluation, and a float16 KV cache stays close to the float32 one.
#include "runtime/model_session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "formats/npy.h"
#include "runtime/generator.h"

namespace jetmoe {
namespace {

const std::string kCase = std::string(JETMOE_FIXTURES_DIR) + "/hf-reference/c1_base_f32";

std::vector<int32_t> npy_row(const NpyArray& a, int64_t row) {
  const int64_t n = a.shape.at(1);
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(int32_t(a.values[size_t(row * n + i)]));
  return out;
}

TEST(ModelSession, GreedyGenerationMatchesTheReference) {
  const std::unique_ptr<Model> model = Model::load(kCase + "/ckpt");
  const NpyArray inputs = read_npy(kCase + "/input_ids.npy");
  const NpyArray expected = read_npy(kCase + "/gen_tokens.npy");
  ThreadPool pool(2);
  SamplingParams params;
  params.temperature = 0;
  GenerationOptions options;
  options.stop_at_eos = false;  // the reference never stops at EOS
  options.max_new_tokens = expected.shape.at(1);
  for (int64_t row = 0; row < inputs.shape.at(0); ++row) {
    ModelSession session(*model, pool);
    Sampler sampler(params);
    const GenerationResult result = generate(session, sampler, npy_row(inputs, row), options);
    EXPECT_EQ(result.tokens, npy_row(expected, row)) << "row " << row;
    EXPECT_EQ(result.finish_reason, FinishReason::Length);
    EXPECT_EQ(session.tokens().size(), size_t(inputs.shape.at(1) + expected.shape.at(1) - 1));
  }
}

TEST(ModelSession, ReusesACommonPrefixWithTheSameResult) {
  const std::unique_ptr<Model> model = Model::load(kCase + "/ckpt");
  ThreadPool pool(1);
  const std::vector<int32_t> first = {1, 438, 489, 324, 83, 63};
  const std::vector<int32_t> second = {1, 438, 489, 324, 7, 8, 9};

  ModelSession warm(*model, pool, 32);
  warm.start(first);
  const std::span<const float> reused = warm.start(second);
  EXPECT_EQ(warm.reused_prompt_tokens(), 4);
  const std::vector<float> reused_logits(reused.begin(), reused.end());

  ModelSession cold(*model, pool, 32);
  const std::span<const float> fresh = cold.start(second);
  EXPECT_EQ(cold.reused_prompt_tokens(), 0);
  ASSERT_EQ(reused_logits.size(), fresh.size());
  for (size_t i = 0; i < fresh.size(); ++i) ASSERT_NEAR(reused_logits[i], fresh[i], 1e-5) << "logit " << i;

  // The same prompt again: everything but the last token is reused (its logits are needed).
  warm.start(second);
  EXPECT_EQ(warm.reused_prompt_tokens(), int64_t(second.size()) - 1);
  warm.reset();
  warm.start(second);
  EXPECT_EQ(warm.reused_prompt_tokens(), 0);
}

TEST(ModelSession, AnF16CacheKeepsTheLogitsCloseToF32) {
  const std::unique_ptr<Model> model = Model::load(kCase + "/ckpt");
  ThreadPool pool(1);
  const std::vector<int32_t> prompt = {1, 438, 489, 324, 83, 63, 7, 8, 9};
  ModelSession exact(*model, pool, 16);
  ModelSession half(*model, pool, 16, DType::F16);
  EXPECT_EQ(exact.cache_type(), DType::F32);
  EXPECT_EQ(half.cache_type(), DType::F16);
  const std::span<const float> want = exact.start(prompt);
  const std::vector<float> exact_logits(want.begin(), want.end());
  const std::span<const float> got = half.start(prompt);
  ASSERT_EQ(got.size(), exact_logits.size());
  // K and V rounded to f16 (relative error <= 2^-11) move the logits of this small model by far
  // less than 1e-2; a cache read wrongly (bytes taken as floats) would move them by O(1).
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - exact_logits[i])));
  EXPECT_LT(worst, 1e-2);
}

TEST(ModelSession, ContextIsClampedAndEnforced) {
  const std::unique_ptr<Model> model = Model::load(kCase + "/ckpt");
  ThreadPool pool(1);
  EXPECT_EQ(ModelSession(*model, pool).context_size(), model->config().max_position_embeddings);
  EXPECT_EQ(ModelSession(*model, pool, 1 << 20).context_size(), model->config().max_position_embeddings);

  ModelSession small(*model, pool, 4);
  EXPECT_THROW(small.start(std::vector<int32_t>{1, 2, 3, 4, 5}), Error);
  small.start(std::vector<int32_t>{1, 2, 3});
  small.append(4);
  EXPECT_THROW(small.append(5), Error);  // a full cache refuses, and stays consistent
  EXPECT_EQ(small.tokens().size(), 4u);
  EXPECT_THROW(small.start(std::vector<int32_t>{1, 9999}), Error);  // outside the vocabulary
  EXPECT_EQ(small.tokens().size(), 1u);  // the shared prefix {1} remains
}

}  // namespace
}  // namespace jetmoe
