#include <gtest/gtest.h>

#include <set>

#include "data_test_files.h"
#include "train/data_mixture.h"

namespace jetmoe::test {
namespace {

// Sources whose ids say where they come from: source A holds ids 0..n-1 in order, B holds
// 20000 + 0..n-1, so a token's value gives its source and stream position.
class DataMixtureTest : public DataDirTest {
 protected:
  static constexpr int64_t kVocab = 40000;
  static constexpr int32_t kB = 20000;

  void SetUp() override {
    DataDirTest::SetUp();
    a_ = write_source("a", iota(0, 3000), kVocab);
    b_ = write_source("b", iota(kB, 2000), kVocab);
  }
  static std::vector<int32_t> iota(int32_t first, int32_t n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) v[size_t(i)] = first + i;
    return v;
  }
  std::vector<TrainingPhase> one_phase(double weight_a, double weight_b) const {
    return {{"p1", {{"a", a_, weight_a}, {"b", b_, weight_b}}, 1.0}};
  }
  static std::vector<std::vector<int32_t>> take(TrainingData& data, int n, int64_t tokens_seen = 0) {
    std::vector<std::vector<int32_t>> out(static_cast<size_t>(n));
    for (auto& seq : out) data.next_sequence(tokens_seen, 1000000, seq);
    return out;
  }
  void expect_error(const std::vector<TrainingPhase>& phases, int64_t seq_len, double val, const std::string& needle) {
    try {
      open_training_data(phases, seq_len, 1, val);
      ADD_FAILURE() << "opened; expected an error containing '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }

  std::string a_, b_;
};

TEST_F(DataMixtureTest, SequencesArePackedWindowsOfOneSource) {
  auto data = open_training_data(one_phase(1, 1), 16, 7, 0.1);
  for (const auto& seq : take(*data, 200)) {
    ASSERT_EQ(seq.size(), 17u);
    for (size_t i = 1; i < seq.size(); ++i) ASSERT_EQ(seq[i], seq[i - 1] + 1);  // contiguous stream
    const int32_t offset = seq[0] >= kB ? seq[0] - kB : seq[0];
    EXPECT_EQ(offset % 16, 0);  // windows start every seq_len tokens
  }
}

TEST_F(DataMixtureTest, SameSeedSameOrderOtherSeedOtherOrder) {
  const auto first = take(*open_training_data(one_phase(1, 1), 16, 7, 0.1), 300);
  EXPECT_EQ(first, take(*open_training_data(one_phase(1, 1), 16, 7, 0.1), 300));
  EXPECT_NE(first, take(*open_training_data(one_phase(1, 1), 16, 8, 0.1), 300));
}

TEST_F(DataMixtureTest, SourcesAreDrawnByWeight) {
  auto data = open_training_data(one_phase(3, 1), 8, 11, 0.0);
  const int n = 8000;
  int from_a = 0;
  for (const auto& seq : take(*data, n)) from_a += seq[0] < kB;
  // Binomial(8000, 0.75): standard deviation 0.0048; 0.025 is over 5 of them.
  EXPECT_NEAR(double(from_a) / n, 0.75, 0.025);
}

TEST_F(DataMixtureTest, ZeroWeightSourceIsNeverDrawn) {
  auto data = open_training_data(one_phase(0, 1), 8, 3, 0.0);
  for (const auto& seq : take(*data, 500)) EXPECT_GE(seq[0], kB);
}

TEST_F(DataMixtureTest, EachEpochServesEveryWindowOnce) {
  auto data = open_training_data({{"p", {{"a", a_, 1}}, 1}}, 100, 5, 0.0);
  const int windows = (3000 - 1) / 100;  // 29 windows of 101 tokens, stride 100
  std::multiset<int32_t> starts;
  for (const auto& seq : take(*data, windows)) starts.insert(seq[0]);
  ASSERT_EQ(int(starts.size()), windows);
  for (int w = 0; w < windows; ++w) EXPECT_EQ(starts.count(w * 100), 1u) << w;
  const auto second_epoch = take(*data, windows);
  std::set<int32_t> again;
  for (const auto& seq : second_epoch) again.insert(seq[0]);
  EXPECT_EQ(int(again.size()), windows);
}

TEST_F(DataMixtureTest, PhaseSwitchesAtItsShareOfTheBudget) {
  const std::vector<TrainingPhase> phases = {{"stable", {{"a", a_, 1}, {"b", b_, 0}}, 3.0},
                                             {"decay", {{"a", a_, 0}, {"b", b_, 1}}, 1.0}};
  auto data = open_training_data(phases, 8, 1, 0.0);
  std::vector<int32_t> seq;
  for (int64_t seen : {0, 500, 749}) {
    data->next_sequence(seen, 1000, seq);
    EXPECT_LT(seq[0], kB) << seen;
    EXPECT_EQ(data->describe_last(), "stable/a");
  }
  for (int64_t seen : {750, 999, 5000}) {
    data->next_sequence(seen, 1000, seq);
    EXPECT_GE(seq[0], kB) << seen;
    EXPECT_EQ(data->describe_last(), "decay/b");
  }
}

TEST_F(DataMixtureTest, RestoredPositionGivesTheSameSequences) {
  auto data = open_training_data(one_phase(2, 1), 32, 9, 0.05);
  take(*data, 137);  // past the end of an epoch of b (59 windows)
  const DataPosition saved = data->position();
  const auto expected = take(*data, 120);

  auto resumed = open_training_data(one_phase(2, 1), 32, 9, 0.05);
  resumed->restore(saved);
  EXPECT_EQ(take(*resumed, 120), expected);
  data->restore(saved);  // and rewinding the same object
  EXPECT_EQ(take(*data, 120), expected);

  auto other = open_training_data(one_phase(2, 1), 16, 9, 0.05);
  EXPECT_THROW(other->restore(saved), Error);
}

TEST_F(DataMixtureTest, ValidationIsTheHeldOutTailAndNeverTrained) {
  auto data = open_training_data(one_phase(1, 1), 16, 2, 0.1);
  // a: 3000 tokens, 300 held out -> ids 2700..2999; b: 2000 tokens, 200 held out.
  std::set<int32_t> validation;
  for (const auto& seq : data->validation_sequences()) {
    ASSERT_EQ(seq.size(), 17u);
    validation.insert(seq.begin(), seq.end());
  }
  EXPECT_EQ(data->validation_sequences().size(), size_t((300 - 1) / 16 + (200 - 1) / 16));
  EXPECT_EQ(*validation.begin(), 2700);
  EXPECT_EQ(*validation.lower_bound(kB), kB + 1800);
  std::set<int32_t> trained;
  for (const auto& seq : take(*data, 2000)) trained.insert(seq.begin(), seq.end());  // several epochs
  for (const int32_t id : trained) ASSERT_EQ(validation.count(id), 0u) << id;
  // b trains on ids 0..1799: (1800 - 1) / 16 = 112 windows of 17 tokens, the last ending at 112 * 16.
  EXPECT_EQ(*trained.rbegin(), kB + 112 * 16);
  EXPECT_EQ(*trained.lower_bound(2000), 2000);
  EXPECT_LE(*std::prev(trained.lower_bound(kB)), 2699);
  EXPECT_EQ(data->validation_sequences(), open_training_data(one_phase(1, 1), 16, 99, 0.1)->validation_sequences());
}

TEST_F(DataMixtureTest, BadMixturesGiveClearErrors) {
  expect_error(one_phase(0, 0), 8, 0, "do not sum to a positive number");
  expect_error(one_phase(-1, 2), 8, 0, "weight -1");
  expect_error({}, 8, 0, "no training phases");
  expect_error({{"p", {}, 1}}, 8, 0, "phase 'p' has no sources");
  expect_error({{"p", {{"a", a_, 1}}, 0}}, 8, 0, "token_share 0");
  expect_error(one_phase(1, 1), 0, 0, "sequence length must be at least 1");
  expect_error(one_phase(1, 1), 8, 1.0, "validation fraction");
  expect_error({{"p", {{"x", path("missing"), 1}}, 1}}, 8, 0, "no such shard directory");
  const std::string empty = write_source("empty", {}, kVocab);
  expect_error({{"p", {{"e", empty, 1}}, 1}}, 8, 0, "holds no tokens");
  expect_error(one_phase(1, 1), 2500, 0.0, "too few for one training sequence");
  const std::string other_vocab = write_source("v", iota(0, 100), 50000);
  expect_error({{"p", {{"a", a_, 1}, {"v", other_vocab, 1}}, 1}}, 8, 0, "same tokenizer");
  auto data = open_training_data(one_phase(1, 1), 8, 1, 0);
  std::vector<int32_t> seq;
  EXPECT_THROW(data->next_sequence(0, 0, seq), Error);
}

}  // namespace
}  // namespace jetmoe::test
