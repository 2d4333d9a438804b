// compute_perplexity against two independent computations:
//  - tests/fixtures/ref-ppl: the float64 PyTorch reference over Hugging Face's sliding-window
//    recipe (tools/reference/make_ppl_fixtures.py), for several contexts and strides;
//  - the same recipe written out in this test over Model::forward logits, with log-softmax in
//    double, so the library's windowing and masking are checked to rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/model.h"
#include "runtime/perplexity.h"

namespace jetmoe {
namespace {

// float32 engine vs float64 reference: logits agree to ~1e-5 (tests/fixtures/ref), so each
// token's NLL to a few 1e-5.
constexpr double kMeanNllTol = 1e-4;

nlohmann::json load_expected() {
  std::ifstream in(std::string(JETMOE_FIXTURES_DIR) + "/ref-ppl/expected.json");
  if (!in) fail("missing tests/fixtures/ref-ppl/expected.json");
  return nlohmann::json::parse(in);
}

std::unique_ptr<Model> load_checkpoint(const nlohmann::json& sequence) {
  return Model::load(std::string(JETMOE_FIXTURES_DIR) + "/" + sequence["checkpoint"].get<std::string>());
}

// The HF recipe, spelled out: windows every `stride`, each scoring the ids after the previous end.
double recipe_nll_sum(const Model& model, const std::vector<int32_t>& ids, int64_t context, int64_t stride,
                      ThreadPool& pool, int64_t* scored) {
  const int64_t n = int64_t(ids.size()), V = model.config().vocab_size;
  double total = 0.0;
  *scored = 0;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < n; begin += stride) {
    const int64_t end = std::min(begin + context, n);
    KvCache cache = model.make_cache(context);
    FloatTensor logits;
    model.forward(std::span<const int32_t>(ids.data() + begin, size_t(end - begin)), cache, logits, pool,
                  LogitsMode::All);
    for (int64_t t = std::max(prev_end, begin + 1); t < end; ++t) {
      const float* row = logits.data() + (t - 1 - begin) * V;
      double mx = -INFINITY;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(row[v]));
      double sum = 0.0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
      total += -(double(row[ids[size_t(t)]]) - mx - std::log(sum));
      ++*scored;
    }
    prev_end = end;
    if (end == n) break;
  }
  return total;
}

TEST(Perplexity, MatchesTheFloat64ReferenceOverSlidingWindows) {
  const nlohmann::json expected = load_expected();
  ASSERT_GE(expected["sequences"].size(), 3u);
  ThreadPool pool(2);
  for (const nlohmann::json& sequence : expected["sequences"]) {
    const std::unique_ptr<Model> model = load_checkpoint(sequence);
    const std::vector<int32_t> ids = sequence["ids"].get<std::vector<int32_t>>();
    for (const nlohmann::json& want : sequence["windows"]) {
      const int64_t context = want["context"], stride = want["stride"];
      SCOPED_TRACE(testing::Message() << sequence["checkpoint"] << " context " << context << " stride " << stride);
      const PerplexityResult got = compute_perplexity(*model, ids, {context, stride}, pool);
      EXPECT_EQ(got.tokens, int64_t(ids.size()));
      EXPECT_EQ(got.tokens_scored, want["tokens_scored"].get<int64_t>());
      EXPECT_EQ(got.windows, want["windows"].get<int64_t>());
      EXPECT_NEAR(got.mean_nll, want["mean_nll"].get<double>(), kMeanNllTol);
      EXPECT_NEAR(got.nll_sum, want["nll_sum"].get<double>(), kMeanNllTol * double(got.tokens_scored));
      EXPECT_NEAR(got.perplexity, want["perplexity"].get<double>(), kMeanNllTol * got.perplexity * 1.01);
      EXPECT_GT(got.seconds, 0.0);
    }
  }
}

TEST(Perplexity, EqualsLogSoftmaxOfModelLogitsInDouble) {
  const nlohmann::json sequence = load_expected()["sequences"][0];
  const std::unique_ptr<Model> model = load_checkpoint(sequence);
  const std::vector<int32_t> ids = sequence["ids"].get<std::vector<int32_t>>();
  ThreadPool pool(2);
  const std::vector<std::pair<int64_t, int64_t>> settings = {{32, 32}, {32, 12}, {9, 2}, {200, 200}};
  for (const auto& [context, stride] : settings) {
    SCOPED_TRACE(testing::Message() << "context " << context << " stride " << stride);
    int64_t scored = 0;
    const double want = recipe_nll_sum(*model, ids, context, stride, pool, &scored);
    const PerplexityResult got = compute_perplexity(*model, ids, {context, stride}, pool);
    EXPECT_EQ(got.tokens_scored, scored);
    EXPECT_NEAR(got.nll_sum, want, 1e-9 * want);
    EXPECT_DOUBLE_EQ(got.perplexity, std::exp(got.nll_sum / double(got.tokens_scored)));
  }
}

TEST(Perplexity, DefaultsAndProgress) {
  const nlohmann::json sequence = load_expected()["sequences"][0];
  const std::unique_ptr<Model> model = load_checkpoint(sequence);  // max_position_embeddings 256
  const std::vector<int32_t> ids = sequence["ids"].get<std::vector<int32_t>>();
  ThreadPool pool(1);
  int calls = 0;
  int64_t last_scored = 0;
  const PerplexityResult r = compute_perplexity(*model, ids, {}, pool, [&](const PerplexityProgress& p) {
    ++calls;
    EXPECT_EQ(p.window, calls);
    last_scored = p.tokens_scored;
  });
  EXPECT_EQ(r.context, 256);  // min(512, max positions)
  EXPECT_EQ(r.stride, 256);
  EXPECT_EQ(r.windows, 1);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(last_scored, int64_t(ids.size()) - 1);
  EXPECT_EQ(r.tokens_evaluated, int64_t(ids.size()));
}

TEST(Perplexity, RejectsWhatItCannotScore) {
  const nlohmann::json sequence = load_expected()["sequences"][0];
  const std::unique_ptr<Model> model = load_checkpoint(sequence);
  ThreadPool pool(1);
  const std::vector<int32_t> one = {1}, two = {1, 5}, bad_id = {1, 100000};
  const auto message = [&](std::span<const int32_t> ids, PerplexityOptions options) -> std::string {
    try {
      compute_perplexity(*model, ids, options, pool);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message(one, {}).find("1 token"), std::string::npos) << message(one, {});
  EXPECT_NE(message({}, {}).find("0 tokens"), std::string::npos) << message({}, {});
  EXPECT_NE(message(two, {257, 0}).find("max_position_embeddings"), std::string::npos);
  EXPECT_NE(message(two, {16, 17}).find("stride"), std::string::npos);
  EXPECT_NE(message(bad_id, {}).find("100000"), std::string::npos) << message(bad_id, {});
  EXPECT_NO_THROW(compute_perplexity(*model, two, {2, 1}, pool));
}

}  // namespace
}  // namespace jetmoe
