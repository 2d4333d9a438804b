// Model::forward_batch: several sequences, each at its own cache position, in one forward.
// Every row must equal the forward of that sequence alone, and the rows built from the
// fixtures' inputs must also equal the independent references' logits (tests/fixtures/ref:
// the PyTorch reference of tools/reference; tests/fixtures/hf-reference: HF transformers).
//
// Tolerances: batched vs alone 1e-5 of the largest |logit|. Both run the same layer code on the
// same weights; only the products' blocking changes with the number of rows (one decoding row
// alone takes the GEMV kernel, stacked with a prefill chunk the GEMM one), which reorders fp32
// sums: ~1e-7 relative per dot product, a few 1e-7 through these 2-3 layer models. Against the
// references the fixtures' own tolerance (1e-4 absolute) applies.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "formats/npy.h"
#include "model/model.h"
#include "model_test_util.h"

namespace jetmoe {
namespace {

constexpr double kBatchedRelTol = 1e-5;
constexpr double kReferenceTol = 1e-4;

// A model with reference inputs: one or more rows of ids, the reference logits of every
// position of every row, and the reference greedy continuation of every row.
struct Fixture {
  std::string name, model_dir;
  std::vector<std::vector<int32_t>> rows;
  NpyArray logits;      // [rows, T, V] (or [T, V] for one row)
  NpyArray gen_tokens;  // [rows, N] (or [N])
};

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  const std::string root = JETMOE_FIXTURES_DIR;
  for (const char* suite : {"ref", "hf-reference"}) {
    if (!std::filesystem::exists(root + "/" + suite)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(root + "/" + suite))
      if (std::filesystem::exists(entry.path() / "input_ids.npy"))
        names.push_back(std::string(suite) + "/" + entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.name = name;
  const std::string dir = std::string(JETMOE_FIXTURES_DIR) + "/" + name;
  f.model_dir = std::filesystem::exists(dir + "/ckpt") ? dir + "/ckpt" : dir;
  const NpyArray ids = read_npy(dir + "/input_ids.npy");
  const int64_t n_rows = ids.shape.size() == 1 ? 1 : ids.shape[0];
  for (int64_t r = 0; r < n_rows; ++r) f.rows.push_back(row_ids(ids, r));
  f.logits = read_npy(dir + "/logits.npy");
  f.gen_tokens = read_npy(dir + "/gen_tokens.npy");
  return f;
}

// Ids the fixtures never chose: a seeded LCG over the vocabulary.
std::vector<int32_t> other_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) {
    seed = seed * 1664525u + 1013904223u;
    id = int32_t((seed >> 8) % uint32_t(vocab));
  }
  return ids;
}

// One sequence of a test batch: ids[0, cached) are in its cache before the batch, ids[cached,
// end) are its chunk. reference_row >= 0: the ids are that fixture row's, so the chunk's last
// logits are the reference logits at position end - 1.
struct TestSequence {
  std::vector<int32_t> ids;
  int64_t cached = 0, end = 0;
  int64_t reference_row = -1;
  std::span<const int32_t> chunk() const { return std::span(ids).subspan(size_t(cached), size_t(end - cached)); }
};

// A cache holding `ids` (empty: nothing to do).
KvCache cache_with(const Model& model, std::span<const int32_t> ids, int64_t capacity, ThreadPool& pool) {
  KvCache cache = model.make_cache(capacity);
  FloatTensor ignored;
  if (!ids.empty()) model.forward(ids, cache, ignored, pool, LogitsMode::Last);
  return cache;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

// Row b of a [B, V] tensor.
std::vector<float> row_of(const FloatTensor& logits, int64_t b) {
  const int64_t V = logits.shape[1];
  return {logits.values.begin() + b * V, logits.values.begin() + (b + 1) * V};
}

class BatchedForward : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = load_fixture(GetParam());
    model_ = Model::load(fixture_.model_dir);
  }

  // Four sequences at different positions: a whole prompt from an empty cache, one decoding
  // token at the end of a cached prompt, a chunk in the middle of a prompt, and other ids
  // (a chunk after a cached prefix longer than any other sequence).
  std::vector<TestSequence> mixed_sequences() const {
    const int64_t rows = int64_t(fixture_.rows.size()), V = model_->config().vocab_size;
    const std::vector<int32_t>& a = fixture_.rows[0];
    const std::vector<int32_t>& b = fixture_.rows[size_t(1 % rows)];
    const int64_t Ta = int64_t(a.size()), Tb = int64_t(b.size());
    std::vector<TestSequence> s;
    s.push_back({a, 0, Ta, 0});
    s.push_back({b, std::max<int64_t>(Tb - 1, 0), Tb, 1 % rows});
    s.push_back({a, Ta / 2, std::max(Ta / 2 + 1, Ta - 1), 0});
    s.push_back({other_ids(Ta + 4, V, 7), Ta + 1, Ta + 4, -1});
    return s;
  }

  double reference_tolerance() const {
    const std::string manifest = std::string(JETMOE_FIXTURES_DIR) + "/" + GetParam() + "/manifest.json";
    std::ifstream in(manifest);
    if (!in) return kReferenceTol;
    return nlohmann::json::parse(in)["tolerances"]["logits_max_abs"].get<double>();
  }

  Fixture fixture_;
  std::unique_ptr<Model> model_;
  ThreadPool pool_{2};
};

TEST_P(BatchedForward, EveryRowEqualsItsSequenceAloneAndTheReference) {
  const int64_t V = model_->config().vocab_size;
  const std::vector<TestSequence> seqs = mixed_sequences();
  const int64_t B = int64_t(seqs.size());
  const int64_t capacity = int64_t(fixture_.rows[0].size()) + 8;

  // Alone: each sequence's chunk in its own forward, then its greedy next token.
  std::vector<std::vector<float>> alone(seqs.size()), alone_next(seqs.size());
  std::vector<int32_t> next_ids(seqs.size());
  for (size_t b = 0; b < seqs.size(); ++b) {
    const TestSequence& s = seqs[b];
    KvCache cache = cache_with(*model_, std::span(s.ids).first(size_t(s.cached)), capacity, pool_);
    FloatTensor logits;
    model_->forward(s.chunk(), cache, logits, pool_, LogitsMode::Last);
    alone[b] = logits.values;
    next_ids[b] = argmax(logits.data(), V);
    model_->forward(std::span(&next_ids[b], 1), cache, logits, pool_, LogitsMode::Last);
    alone_next[b] = logits.values;
  }

  // Batched: the same chunks in one forward, then the next tokens of all four in another.
  std::vector<KvCache> caches;
  for (const TestSequence& s : seqs)
    caches.push_back(cache_with(*model_, std::span(s.ids).first(size_t(s.cached)), capacity, pool_));
  std::vector<SequenceChunk> chunks;
  for (int64_t b = 0; b < B; ++b) chunks.push_back({seqs[size_t(b)].chunk(), &caches[size_t(b)]});
  FloatTensor batched;
  model_->forward_batch(chunks, batched, pool_);
  ASSERT_EQ(batched.shape, (Shape{B, V}));
  double worst = 0;  // relative to the largest |logit|, for the log
  for (int64_t b = 0; b < B; ++b) {
    const TestSequence& s = seqs[size_t(b)];
    EXPECT_EQ(caches[size_t(b)].length(), s.end) << "sequence " << b;
    const std::vector<float> got = row_of(batched, b);
    const double diff = max_abs_diff(got, alone[size_t(b)], 0, V), scale = max_abs(alone[size_t(b)]);
    worst = std::max(worst, diff / scale);
    EXPECT_LE(diff, kBatchedRelTol * scale) << "sequence " << b;
    if (s.reference_row >= 0) {
      const int64_t T = int64_t(fixture_.rows[size_t(s.reference_row)].size());
      EXPECT_LE(max_abs_diff(got, fixture_.logits.values, (s.reference_row * T + s.end - 1) * V, V),
                reference_tolerance())
          << "sequence " << b << " against the reference logits at position " << s.end - 1;
    }
  }

  std::cout << "[ measured ] " << GetParam() << ": max |batched - alone| / max |logit| = " << worst << "\n";

  // The next step reads the K/V the batched forward wrote into each cache.
  chunks.clear();
  for (int64_t b = 0; b < B; ++b) chunks.push_back({std::span(&next_ids[size_t(b)], 1), &caches[size_t(b)]});
  model_->forward_batch(chunks, batched, pool_);
  for (int64_t b = 0; b < B; ++b)
    EXPECT_LE(max_abs_diff(row_of(batched, b), alone_next[size_t(b)], 0, V),
              kBatchedRelTol * max_abs(alone_next[size_t(b)]))
        << "sequence " << b << ", next step";
}

// Greedy decoding of four prompts of different lengths, batched step by step the way the
// server's continuous batching runs it: prompt i joins at step i, prompts are prefilled in
// chunks of 3 tokens inside the same forwards as the others' decoding. Every sequence must
// produce exactly the tokens it produces alone, and the fixture prompt the reference's tokens.
TEST_P(BatchedForward, GreedyDecodingBatchedStepByStepEqualsEachAlone) {
  const int64_t V = model_->config().vocab_size;
  const int64_t N = 8;
  const std::vector<int32_t>& a = fixture_.rows[0];
  const std::vector<int32_t>& b = fixture_.rows.back();
  std::vector<std::vector<int32_t>> prompts = {a, std::vector<int32_t>(b.begin(), b.begin() + (b.size() + 1) / 2),
                                               other_ids(1, V, 11), other_ids(int64_t(a.size()) + 5, V, 13)};
  const int64_t capacity = int64_t(a.size()) + 5 + N;

  auto greedy_alone = [&](const std::vector<int32_t>& prompt) {
    KvCache cache = model_->make_cache(capacity);
    FloatTensor logits;
    std::vector<int32_t> out, feed = prompt;
    for (int64_t i = 0; i < N; ++i) {
      model_->forward(feed, cache, logits, pool_, LogitsMode::Last);
      out.push_back(argmax(logits.data(), V));
      feed = {out.back()};
    }
    return out;
  };

  struct Stream {
    const std::vector<int32_t>* prompt;
    KvCache cache;
    size_t prompt_done = 0;
    std::vector<int32_t> out;
  };
  std::vector<Stream> streams;
  for (const auto& prompt : prompts) streams.push_back({&prompt, model_->make_cache(capacity), 0, {}});
  constexpr size_t kChunk = 3;
  FloatTensor logits;
  for (int step = 0;; ++step) {
    std::vector<SequenceChunk> chunks;
    std::vector<Stream*> in_batch;
    for (size_t i = 0; i < streams.size() && int(i) <= step; ++i) {
      Stream& s = streams[i];
      if (int64_t(s.out.size()) == N) continue;
      std::span<const int32_t> input;
      if (s.prompt_done < s.prompt->size())
        input = std::span(*s.prompt).subspan(s.prompt_done, std::min(kChunk, s.prompt->size() - s.prompt_done));
      else
        input = std::span(&s.out.back(), 1);
      chunks.push_back({input, &s.cache});
      in_batch.push_back(&s);
    }
    if (chunks.empty()) break;
    model_->forward_batch(chunks, logits, pool_);
    for (size_t c = 0; c < chunks.size(); ++c) {
      Stream& s = *in_batch[c];
      const bool prefilling = s.prompt_done < s.prompt->size();
      if (prefilling) s.prompt_done += chunks[c].tokens.size();
      if (s.prompt_done == s.prompt->size()) s.out.push_back(argmax(logits.data() + int64_t(c) * V, V));
    }
  }
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(streams[i].out, greedy_alone(prompts[i])) << "prompt " << i;

  const int64_t n_ref = std::min<int64_t>(N, fixture_.gen_tokens.shape.back());
  for (int64_t i = 0; i < n_ref; ++i)
    EXPECT_EQ(streams[0].out[size_t(i)], int32_t(fixture_.gen_tokens.values[size_t(i)])) << "reference step " << i;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchedForward, ::testing::ValuesIn(fixture_names()), [](const auto& info) {
  std::string name = info.param;
  std::replace_if(name.begin(), name.end(), [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
  return name;
});
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BatchedForward);

TEST(BatchedForwardFixtures, IncludeBf16Weights) {
  const std::vector<std::string> names = fixture_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "ref/bf16"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "hf-reference/c4_bf16"), names.end());
}

// A bad chunk anywhere in the batch: an error naming it, and no cache touched.
class BatchedForwardBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(std::string(JETMOE_FIXTURES_DIR) + "/ref/top2_of_4_f32");
    const int64_t max_pos = model_->config().max_position_embeddings;
    // Caches at different lengths; the last one is larger than max_position_embeddings.
    for (int64_t i = 0; i < 3; ++i) caches_.push_back(cache_with(*model_, ids(i + 2), 16, pool_));
    caches_.push_back(cache_with(*model_, ids(max_pos - 2), max_pos + 8, pool_));
    for (const KvCache& cache : caches_) snapshots_.push_back(snapshot(cache));
  }

  std::vector<int32_t> ids(int64_t n) const { return other_ids(n, model_->config().vocab_size, 5); }

  std::vector<float> snapshot(const KvCache& cache) const {
    std::vector<float> all = {float(cache.length())};
    for (int64_t l = 0; l < model_->config().num_layers; ++l) {
      const size_t n = size_t(cache.capacity() * cache.row_size());
      all.insert(all.end(), cache.f32_keys(l), cache.f32_keys(l) + n);
      all.insert(all.end(), cache.f32_values(l), cache.f32_values(l) + n);
    }
    return all;
  }

  // Runs chunk_tokens[b] on caches_[b]; expects an Error whose message holds every `needles`.
  void expect_rejected(const std::vector<std::vector<int32_t>>& chunk_tokens, std::vector<std::string> needles,
                       std::vector<KvCache*> caches = {}) {
    if (caches.empty())
      for (KvCache& cache : caches_) caches.push_back(&cache);
    std::vector<SequenceChunk> chunks;
    for (size_t b = 0; b < chunk_tokens.size(); ++b) chunks.push_back({chunk_tokens[b], caches[b]});
    FloatTensor logits;
    try {
      model_->forward_batch(chunks, logits, pool_);
      ADD_FAILURE() << "forward_batch accepted a bad batch";
    } catch (const Error& e) {
      for (const std::string& needle : needles)
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what() << "\nlacks: " << needle;
    }
    for (size_t i = 0; i < caches_.size(); ++i)
      EXPECT_EQ(snapshot(caches_[i]) == snapshots_[i], true) << "cache " << i << " changed";
  }

  std::unique_ptr<Model> model_;
  ThreadPool pool_{2};
  std::vector<KvCache> caches_;
  std::vector<std::vector<float>> snapshots_;
};

TEST_F(BatchedForwardBadInput, TokenOutsideTheVocabulary) {
  const int32_t V = int32_t(model_->config().vocab_size);
  expect_rejected({{1, 2}, {3}, {4, V, 5}, {6}}, {"chunk 2", "token id " + std::to_string(V), "vocabulary"});
  expect_rejected({{1, 2}, {-1}, {4}, {6}}, {"chunk 1", "token id -1", "vocabulary"});
}

TEST_F(BatchedForwardBadInput, CacheOverflow) {
  // caches_[1] holds 3 of 16 positions.
  expect_rejected({{1}, std::vector<int32_t>(14, 7), {4}, {6}}, {"chunk 1", "context overflow", "KV cache size 16"});
  // caches_[3] is at max_position_embeddings - 2 with room to spare.
  expect_rejected({{1}, {2}, {4}, {6, 7, 8}}, {"chunk 3", "max_position_embeddings"});
}

TEST_F(BatchedForwardBadInput, EmptyChunkNoCacheSharedCacheEmptyBatch) {
  expect_rejected({{1}, {2}, {}, {6}}, {"chunk 2", "no tokens"});
  expect_rejected({{1}, {2}}, {"chunk 1", "no KV cache"}, {&caches_[0], nullptr});
  expect_rejected({{1}, {2}, {3}}, {"chunk 2", "chunk 0", "KV cache"}, {&caches_[0], &caches_[1], &caches_[0]});
  FloatTensor logits;
  EXPECT_THROW(model_->forward_batch({}, logits, pool_), Error);
}

// After a rejected batch the same caches still run a good one.
TEST_F(BatchedForwardBadInput, CachesStayUsable) {
  expect_rejected({{1}, {2}, {3}, {int32_t(model_->config().vocab_size)}}, {"chunk 3"});
  std::vector<SequenceChunk> chunks;
  const std::vector<int32_t> token = {9};
  for (KvCache& cache : caches_) chunks.push_back({token, &cache});
  FloatTensor logits;
  model_->forward_batch(chunks, logits, pool_);
  EXPECT_EQ(caches_[0].length(), 3);
  EXPECT_EQ(caches_[3].length(), model_->config().max_position_embeddings - 1);
}

}  // namespace
}  // namespace jetmoe
