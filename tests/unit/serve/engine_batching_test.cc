// The engine's continuous batching, in process: several jobs decode together in one batched
// forward per step (prompts prefilled in chunks beside the others' decoding), each with exactly
// the greedy tokens of its prompt decoded alone by Model::forward; a job the batched forward
// cannot run fails alone while the others finish; the metrics count every token.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "formats/tokenizer/tokenizer.h"
#include "model/model.h"
#include "serve/engine.h"

namespace jetmoe::serve {
namespace {

constexpr int64_t kTokens = 6;

const Tokenizer& llama2() {
  static const Tokenizer tokenizer = [] {
    const char* env = std::getenv("JETMOE_TOKENIZER_ASSETS");
    const std::string dir = env && *env ? env : std::string(JETMOE_SOURCE_DIR) + "/build/tokenizer-assets";
    return Tokenizer::load(dir + "/llama2/tokenizer.json");
  }();
  return tokenizer;
}

std::shared_ptr<Job> greedy_job(std::vector<int32_t> prompt) {
  JobSpec spec;
  spec.prompt = std::move(prompt);
  spec.sampling.temperature = 0;
  spec.max_tokens = kTokens;
  spec.ignore_eos = true;
  return std::make_shared<Job>(std::move(spec));
}

// The ids a job sampled, once it ended.
std::vector<int32_t> sampled_ids(Job& job) {
  std::vector<JobEvent> events;
  for (int i = 0; i < 600 && !job.wait(events, std::chrono::milliseconds(100)); ++i) {
  }
  EXPECT_TRUE(job.ended());
  std::vector<int32_t> ids;
  for (const JobEvent& e : events)
    if (e.token) ids.push_back(e.token->id);
  return ids;
}

// The value on the line "<name> <value>" of the Prometheus text; -1 if there is none.
double metric(const Metrics& metrics, const std::string& name) {
  std::istringstream text(metrics.prometheus_text());
  for (std::string line; std::getline(text, line);)
    if (line.starts_with(name + " ")) return std::stod(line.substr(name.size() + 1));
  return -1;
}

class EngineBatching : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(std::string(JETMOE_FIXTURES_DIR) + "/ref/top2_of_4_f32");
    // Prompts of 9, 1, 5 and 12 ids: with chunks of 4 the long ones prefill over several steps.
    prompts_ = {{1, 17, 300, 42, 9, 250, 3, 77, 5}, {1}, {1, 200, 201, 202, 7}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}};
  }

  // Greedy decoding of `prompt` alone, one Model::forward per step. Only while no engine runs:
  // the engine thread owns pool_ while it runs, and a pool serves one caller at a time.
  std::vector<int32_t> decode_alone(const std::vector<int32_t>& prompt, DType cache_type = DType::F32) {
    KvCache cache = model_->make_cache(64, cache_type);
    FloatTensor logits;
    std::vector<int32_t> out, feed = prompt;
    for (int64_t i = 0; i < kTokens; ++i) {
      model_->forward(feed, cache, logits, pool_, LogitsMode::Last);
      out.push_back(int32_t(std::max_element(logits.values.begin(), logits.values.end()) - logits.values.begin()));
      feed = {out.back()};
    }
    return out;
  }

  EngineOptions options() const {
    EngineOptions o;
    o.parallel = 4;
    o.context_size = 64;
    o.prefill_chunk = 4;
    return o;
  }

  std::unique_ptr<Model> model_;
  ThreadPool pool_{2};
  Metrics metrics_;
  std::vector<std::vector<int32_t>> prompts_;
};

TEST_F(EngineBatching, ConcurrentJobsDecodeTogetherWithTheirAloneTokens) {
  std::vector<std::vector<int32_t>> alone;
  for (const auto& prompt : prompts_) alone.push_back(decode_alone(prompt));
  Engine engine(*model_, llama2(), pool_, options(), metrics_);
  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& prompt : prompts_) {
    jobs.push_back(greedy_job(prompt));
    engine.submit(jobs.back());  // before start: all four join the first step
  }
  engine.start();
  int64_t prompt_tokens = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(sampled_ids(*jobs[i]), alone[i]) << "prompt " << i;
    EXPECT_EQ(jobs[i]->outcome().status, JobStatus::Finished) << jobs[i]->outcome().error;
    prompt_tokens += int64_t(prompts_[i].size());
  }
  engine.stop();

  const EngineStats stats = engine.stats();
  EXPECT_EQ(stats.largest_batch, 4);
  EXPECT_EQ(stats.fallbacks, 0);
  // One forward per step, not per slot: 3 prefill steps of the longest prompt + its 5 decodes.
  EXPECT_EQ(stats.forwards, 3 + kTokens - 1);
  EXPECT_EQ(metric(metrics_, "jetmoe_prompt_tokens_total"), double(prompt_tokens));
  EXPECT_EQ(metric(metrics_, "jetmoe_generated_tokens_total"), double(4 * kTokens));
  EXPECT_GT(metric(metrics_, "jetmoe_generation_seconds_total"), 0.0);
}

TEST_F(EngineBatching, AJobTheModelRejectsFailsAloneAndTheOthersFinish) {
  // An id outside the vocabulary (the HTTP layer would refuse it; the engine must cope anyway).
  std::vector<std::vector<int32_t>> prompts = prompts_;
  prompts[2][1] = int32_t(model_->config().vocab_size);
  std::vector<std::vector<int32_t>> alone;
  for (size_t i = 0; i < prompts.size(); ++i) alone.push_back(i == 2 ? std::vector<int32_t>{} : decode_alone(prompts[i]));
  Engine engine(*model_, llama2(), pool_, options(), metrics_);
  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& prompt : prompts) {
    jobs.push_back(greedy_job(prompt));
    engine.submit(jobs.back());
  }
  engine.start();
  for (size_t i = 0; i < jobs.size(); ++i) {
    const std::vector<int32_t> ids = sampled_ids(*jobs[i]);
    const JobOutcome outcome = jobs[i]->outcome();
    if (i == 2) {
      EXPECT_EQ(outcome.status, JobStatus::Failed);
      EXPECT_NE(outcome.error.find("outside the vocabulary"), std::string::npos) << outcome.error;
      EXPECT_TRUE(ids.empty());
    } else {
      EXPECT_EQ(outcome.status, JobStatus::Finished) << "prompt " << i << ": " << outcome.error;
      EXPECT_EQ(ids, alone[i]) << "prompt " << i;
    }
  }
  engine.stop();
  EXPECT_EQ(engine.stats().fallbacks, 1);
  EXPECT_EQ(metric(metrics_, "jetmoe_requests_total{outcome=\"failed\"}"), 1.0);
  EXPECT_EQ(metric(metrics_, "jetmoe_generated_tokens_total"), double(3 * kTokens));
}

TEST_F(EngineBatching, EverySlotsCacheHasTheOptionsTypeAndItsBytesAreReported) {
  std::vector<std::vector<int32_t>> alone;
  for (const auto& prompt : prompts_) alone.push_back(decode_alone(prompt, DType::F16));
  EngineOptions o = options();
  o.cache_type = DType::F16;
  Engine engine(*model_, llama2(), pool_, o, metrics_);
  // The gauge sums the slots' real caches: 4 x 64 positions of F16 rows.
  EXPECT_EQ(metric(metrics_, "jetmoe_kv_cache_bytes"), double(4 * model_->make_cache(64, DType::F16).bytes()));
  EXPECT_EQ(2 * metric(metrics_, "jetmoe_kv_cache_bytes"), double(4 * model_->make_cache(64).bytes()));
  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& prompt : prompts_) {
    jobs.push_back(greedy_job(prompt));
    engine.submit(jobs.back());
  }
  engine.start();
  // Batched over F16 caches, each job decodes as its prompt does alone on an F16 cache.
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(sampled_ids(*jobs[i]), alone[i]) << "prompt " << i;
    EXPECT_EQ(jobs[i]->outcome().status, JobStatus::Finished) << jobs[i]->outcome().error;
  }
  engine.stop();
}

}  // namespace
}  // namespace jetmoe::serve
