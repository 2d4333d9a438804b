// Sampler: each filter against a direct computation from its definition, the sampled
// frequencies against the distribution the chain should produce, determinism per seed.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "core/error.h"

namespace jetmoe {
namespace {

SamplingParams all_filters_off(float temperature = 1.0f, uint64_t seed = 7) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  p.seed = seed;
  return p;
}

// Logits spread over a few units, with some exact ties, from a fixed LCG (test data only).
std::vector<float> test_logits(size_t n, uint32_t seed) {
  std::vector<float> logits(n);
  uint32_t state = seed;
  for (float& x : logits) {
    state = state * 1664525u + 1013904223u;
    x = float(int(state >> 20) % 400 - 200) / 40.0f;  // multiples of 1/40 in [-5, 5): ties happen
  }
  return logits;
}

std::vector<Candidate> as_candidates(const std::vector<float>& logits) {
  std::vector<Candidate> c;
  for (size_t i = 0; i < logits.size(); ++i) c.push_back({int32_t(i), logits[i]});
  return c;
}

std::set<int32_t> ids_of(const std::vector<Candidate>& candidates) {
  std::set<int32_t> ids;
  for (const Candidate& c : candidates) ids.insert(c.id);
  return ids;
}

// Plain softmax over a full logits row, written independently of the sampler.
std::vector<double> softmax(const std::vector<float>& logits, double temperature = 1.0) {
  double max = -INFINITY;
  for (float x : logits) max = std::max(max, double(x));
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp((logits[i] - max) / temperature);
  for (double& x : p) x /= sum;
  return p;
}

TEST(Sampler, GreedyPicksArgmaxAndBreaksTiesTowardsLowestId) {
  Sampler greedy(all_filters_off(0.0f));
  EXPECT_EQ(greedy.sample(std::vector<float>{0.1f, 3.0f, -2.0f, 2.9f}), 1);
  EXPECT_EQ(greedy.sample(std::vector<float>{1.0f, 5.0f, 2.0f, 5.0f, 5.0f}), 1);
  EXPECT_EQ(greedy.sample(std::vector<float>{-INFINITY, -1.0f, -INFINITY}), 1);
  // Greedy ignores the random stream: the same answer every time, whatever the seed.
  const std::vector<float> logits = test_logits(1000, 3);
  const int32_t expected = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  for (uint64_t seed : {1u, 2u, 3u}) EXPECT_EQ(Sampler(all_filters_off(0.0f, seed)).sample(logits), expected);
}

TEST(Sampler, TopKKeepsTheKLargestLogits) {
  const std::vector<float> logits = test_logits(500, 11);
  for (int k : {1, 5, 37, 499, 500, 800}) {
    std::vector<Candidate> c = as_candidates(logits);
    apply_top_k(c, k);
    // Direct: token i survives iff fewer than k tokens rank above it (higher logit, or equal
    // logit and lower id).
    std::set<int32_t> expected;
    for (size_t i = 0; i < logits.size(); ++i) {
      int above = 0;
      for (size_t j = 0; j < logits.size(); ++j)
        above += logits[j] > logits[i] || (logits[j] == logits[i] && j < i);
      if (above < k) expected.insert(int32_t(i));
    }
    EXPECT_EQ(ids_of(c), expected) << "k=" << k;
    EXPECT_TRUE(std::is_sorted(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
      return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    }));
  }
  std::vector<Candidate> c = as_candidates(logits);
  apply_top_k(c, 0);  // off
  EXPECT_EQ(c.size(), logits.size());
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  const std::vector<float> logits = test_logits(300, 5);
  const std::vector<double> p = softmax(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (float top_p : {0.05f, 0.3f, 0.5f, 0.9f, 0.999f}) {
    std::set<int32_t> expected;
    double mass = 0;
    for (int32_t id : order) {
      expected.insert(id);
      mass += p[size_t(id)];
      if (mass >= top_p) break;
    }
    std::vector<Candidate> c = as_candidates(logits);
    sort_candidates(c);
    apply_top_p(c, top_p);
    EXPECT_EQ(ids_of(c), expected) << "top_p=" << top_p;
  }
}

TEST(Sampler, MinPKeepsTokensAtLeastMinPTimesTheMostLikely) {
  const std::vector<float> logits = test_logits(300, 9);
  const std::vector<double> p = softmax(logits);
  const double p_max = *std::max_element(p.begin(), p.end());
  for (float min_p : {0.01f, 0.05f, 0.2f, 0.7f, 1.0f}) {
    std::set<int32_t> expected;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] >= min_p * p_max * (1 - 1e-9)) expected.insert(int32_t(i));
    std::vector<Candidate> c = as_candidates(logits);
    apply_min_p(c, min_p);
    EXPECT_EQ(ids_of(c), expected) << "min_p=" << min_p;
  }
}

TEST(Sampler, RepetitionPenaltyScalesRecentDistinctTokens) {
  const std::vector<float> logits = {2.0f, -1.0f, 3.0f, 0.5f, -4.0f, 1.0f};
  // Last 4 of the history are {5, 1, 1, 0}: token 4 (earlier) is outside the window.
  const std::vector<int32_t> history = {4, 2, 5, 1, 1, 0};
  std::vector<Candidate> c = as_candidates(logits);
  apply_repetition_penalty(c, history, 2.0f, 4);
  const std::vector<float> expected = {1.0f, -2.0f, 3.0f, 0.5f, -4.0f, 0.5f};  // duplicates once
  for (size_t i = 0; i < c.size(); ++i) EXPECT_FLOAT_EQ(c[i].logit, expected[i]) << "id " << i;

  c = as_candidates(logits);
  apply_repetition_penalty(c, history, 2.0f, -1);  // whole history
  EXPECT_FLOAT_EQ(c[2].logit, 1.5f);
  EXPECT_FLOAT_EQ(c[4].logit, -8.0f);

  c = as_candidates(logits);
  apply_repetition_penalty(c, history, 2.0f, 0);  // off
  for (size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c[i].logit, logits[i]);

  // Seen through the sampler: the repeated favourite loses greedy selection.
  SamplingParams params = all_filters_off(0.0f);
  params.repeat_penalty = 1.6f;
  Sampler sampler(params);
  EXPECT_EQ(sampler.sample(std::vector<float>{2.0f, 1.5f}, std::vector<int32_t>{0}), 1);
  EXPECT_EQ(sampler.sample(std::vector<float>{2.0f, 1.5f}, std::vector<int32_t>{1}), 0);
}

// Pearson chi-square of `counts` against `expected` probabilities (cells with p > 0).
double chi_square(const std::vector<int>& counts, const std::vector<double>& expected, int n) {
  double chi2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " should never be drawn";
      continue;
    }
    const double e = expected[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi2;
}

TEST(Sampler, FrequenciesFollowSoftmaxOfLogitsOverTemperature) {
  const std::vector<float> logits = {1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 1.5f};
  const float temperature = 0.8f;
  const std::vector<double> expected = softmax(logits, temperature);
  Sampler sampler(all_filters_off(temperature, 2024));
  const int n = 40000;
  std::vector<int> counts(logits.size());
  for (int i = 0; i < n; ++i) ++counts[size_t(sampler.sample(logits))];
  // 5 degrees of freedom: P(chi2 > 20.52) = 0.001 for a correct sampler.
  EXPECT_LT(chi_square(counts, expected, n), 20.52);
}

TEST(Sampler, FrequenciesFollowTheFilteredDistribution) {
  // 10 tokens; top-k 6 drops the 4 lowest, top-p 0.9 then trims the tail of the 6, min-p 0.2
  // drops what is under a fifth of the best; temperature reshapes what is left.
  const std::vector<float> logits = {0.2f, 2.5f, -1.0f, 1.7f, 3.0f, 0.9f, -0.3f, 2.2f, 1.2f, -2.0f};
  SamplingParams params = all_filters_off(0.7f, 99);
  params.top_k = 6;
  params.top_p = 0.9f;
  params.min_p = 0.2f;

  // Expected distribution, by the definitions, at temperature 1 for the filters.
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  order.resize(6);
  std::vector<float> top(6);
  for (size_t i = 0; i < 6; ++i) top[i] = logits[size_t(order[i])];
  const std::vector<double> p_top = softmax(top);
  size_t keep = 0;
  for (double mass = 0; keep < 6 && mass < 0.9; ++keep) mass += p_top[keep];
  std::vector<int32_t> kept;
  for (size_t i = 0; i < keep; ++i)
    if (p_top[i] >= 0.2 * p_top[0]) kept.push_back(order[i]);
  std::vector<float> kept_logits;
  for (int32_t id : kept) kept_logits.push_back(logits[size_t(id)]);
  const std::vector<double> p_kept = softmax(kept_logits, 0.7);
  std::vector<double> expected(logits.size(), 0.0);
  for (size_t i = 0; i < kept.size(); ++i) expected[size_t(kept[i])] = p_kept[i];
  ASSERT_GE(kept.size(), 3u);  // the case must leave something to sample between
  ASSERT_LT(kept.size(), keep);  // and min-p must have cut something after top-p

  Sampler sampler(params);
  const int n = 40000;
  std::vector<int> counts(logits.size());
  for (int i = 0; i < n; ++i) ++counts[size_t(sampler.sample(logits))];
  // df = kept - 1 <= 4: P(chi2 > 18.47) = 0.001.
  EXPECT_LT(chi_square(counts, expected, n), 18.47);
}

TEST(Sampler, SameSeedSameDrawsOtherSeedOtherDraws) {
  const std::vector<float> logits = test_logits(64, 1);
  auto draws = [&](uint64_t seed) {
    SamplingParams params = all_filters_off(1.5f, seed);
    Sampler sampler(params);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(sampler.sample(logits));
    return out;
  };
  EXPECT_EQ(draws(42), draws(42));
  EXPECT_NE(draws(42), draws(43));
}

TEST(Sampler, RejectsBadParametersNamingThem) {
  auto error_of = [](auto mutate) {
    SamplingParams p;
    mutate(p);
    try {
      validate_sampling_params(p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of([](SamplingParams& p) { p.temperature = -0.1f; }).find("temperature"), std::string::npos);
  EXPECT_NE(error_of([](SamplingParams& p) { p.temperature = NAN; }).find("temperature"), std::string::npos);
  EXPECT_NE(error_of([](SamplingParams& p) { p.top_p = 0.0f; }).find("top_p"), std::string::npos);
  EXPECT_NE(error_of([](SamplingParams& p) { p.top_p = 1.5f; }).find("top_p"), std::string::npos);
  EXPECT_NE(error_of([](SamplingParams& p) { p.min_p = -0.5f; }).find("min_p"), std::string::npos);
  EXPECT_NE(error_of([](SamplingParams& p) { p.repeat_penalty = 0.0f; }).find("repeat_penalty"),
            std::string::npos);
  EXPECT_NE(error_of([](SamplingParams& p) { p.repeat_last_n = -2; }).find("repeat_last_n"), std::string::npos);
  EXPECT_EQ(error_of([](SamplingParams&) {}), "no error");
  EXPECT_THROW(Sampler(SamplingParams{.temperature = -1.0f}), Error);
}

TEST(Sampler, RejectsGarbageLogits) {
  Sampler sampler(all_filters_off(1.0f));
  EXPECT_THROW(sampler.sample(std::vector<float>{1.0f, NAN}), Error);
  EXPECT_THROW(sampler.sample(std::vector<float>{-INFINITY, -INFINITY}), Error);
  EXPECT_THROW(sampler.sample(std::vector<float>{}), Error);
}

}  // namespace
}  // namespace jetmoe
