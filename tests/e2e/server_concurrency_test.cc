// `jetmoe serve` under concurrent load: continuous batching (all busy slots in one batched
// forward per step) must not change greedy results, nor seeded sampled ones; a full queue answers 503, a client that goes away frees its slot at once, and a bounded load
// test (32 clients against --parallel 4, some streaming, some disconnecting early) finishes
// every request correctly with memory back at its baseline. Prints the load test's figures.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "server_harness.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Prompts of different lengths; the long ones span several prefill chunks.
std::vector<std::string> test_prompts() {
  std::vector<std::string> prompts = {"Once upon a time", "The capital of France is", "def fibonacci(n):",
                                      "I believe the meaning of life is", "Hello", "1, 2, 3, 4,"};
  std::string long_prompt = "In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole, filled with "
                            "the ends of worms and an oozy smell, nor yet a dry, bare, sandy hole";
  prompts.push_back(long_prompt);
  prompts.push_back(long_prompt + " with nothing in it to sit down on or to eat: it was a hobbit-hole");
  return prompts;
}

json greedy_request(const std::string& prompt, int max_tokens, bool stream) {
  json body = {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
  if (stream) body["stream"] = true;
  return body;
}

// The text of a completion, whole or streamed; nullopt if the answer is not a complete success.
std::optional<std::string> completion_text(const HttpResult& r, bool stream) {
  if (r.status != 200) return std::nullopt;
  try {
    if (!stream) return json::parse(r.body)["choices"][0]["text"].get<std::string>();
    const std::vector<std::string> events = sse_payloads(r.body);
    if (events.empty() || events.back() != "[DONE]") return std::nullopt;
    std::string text;
    for (size_t i = 0; i + 1 < events.size(); ++i) text += json::parse(events[i])["choices"][0]["text"].get<std::string>();
    return text;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, size_t(p * double(values.size() - 1) + 0.5));
  return values[index];
}

class ServerConcurrency : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = server_detail::fresh_dir("jetmoe_server_load").string();
    // Heavy enough that a token takes measurable time, so streams overlap and disconnects
    // happen long before a request could finish.
    model_ = make_text_model(dir_, 256, 4, 4096);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static inline std::string dir_, model_;
};

TEST_F(ServerConcurrency, GreedyResultsOfConcurrentRequestsEqualSingleRequests) {
  // A small prefill chunk: long prompts are evaluated over several steps, interleaved with
  // the other slots' decoding.
  ServerProcess server(model_, {"--parallel", "4", "--prefill-chunk", "8", "--ctx-size", "256"});
  const std::vector<std::string> prompts = test_prompts();
  constexpr int kTokens = 16;

  std::vector<std::string> single;
  for (const std::string& prompt : prompts) {
    const HttpResult r = server.post("/v1/completions", greedy_request(prompt, kTokens, false));
    const auto text = completion_text(r, false);
    ASSERT_TRUE(text) << r.body;
    single.push_back(*text);
  }
  // The chunked prefill agrees with the CLI, which evaluates the prompt in one forward.
  const CliResult cli = run_cli({"generate", "-m", model_, "-p", prompts.back(), "-n", std::to_string(kTokens),
                                 "--temp", "0", "--ignore-eos"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(prompts.back() + single.back() + "\n", cli.out);

  // Every prompt twice at once, half of them streamed.
  std::vector<std::unique_ptr<CurlRun>> runs;
  for (int copy = 0; copy < 2; ++copy)
    for (size_t i = 0; i < prompts.size(); ++i)
      runs.push_back(std::make_unique<CurlRun>(
          server.start("/v1/completions", greedy_request(prompts[i], kTokens, (i + copy) % 2 == 1).dump())));
  for (int copy = 0, k = 0; copy < 2; ++copy) {
    for (size_t i = 0; i < prompts.size(); ++i, ++k) {
      const bool stream = (i + copy) % 2 == 1;
      const HttpResult r = runs[size_t(k)]->finish();
      const auto text = completion_text(r, stream);
      ASSERT_TRUE(text) << r.status << " " << r.body;
      EXPECT_EQ(*text, single[i]) << "prompt " << i << (stream ? " (streamed)" : "");
    }
  }
}

// Sampling with a seed draws the same random numbers alone or batched; the logits differ only
// by float rounding, so the sampled tokens are the same too.
TEST_F(ServerConcurrency, SeededSampledResultsOfConcurrentRequestsEqualSingleRequests) {
  ServerProcess server(model_, {"--parallel", "4", "--prefill-chunk", "8", "--ctx-size", "256"});
  const std::vector<std::string> prompts = test_prompts();
  auto request = [](const std::string& prompt, int seed) {
    return json{{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0.9}, {"top_k", 0},
                {"top_p", 1.0}, {"seed", seed}, {"ignore_eos", true}};
  };
  std::vector<std::string> single;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const HttpResult r = server.post("/v1/completions", request(prompts[i], int(100 + i)));
    const auto text = completion_text(r, false);
    ASSERT_TRUE(text) << r.body;
    single.push_back(*text);
  }
  std::vector<std::unique_ptr<CurlRun>> runs;
  for (size_t i = 0; i < prompts.size(); ++i)
    runs.push_back(std::make_unique<CurlRun>(server.start("/v1/completions", request(prompts[i], int(100 + i)).dump())));
  for (size_t i = 0; i < prompts.size(); ++i) {
    const HttpResult r = runs[i]->finish();
    const auto text = completion_text(r, false);
    ASSERT_TRUE(text) << r.status << " " << r.body;
    EXPECT_EQ(*text, single[i]) << "prompt " << i;
  }
}

TEST_F(ServerConcurrency, AFullQueueAnswers503AndTheServerRecovers) {
  ServerProcess server(model_, {"--parallel", "1", "--max-queue", "1", "--ctx-size", "512"});
  std::vector<std::unique_ptr<CurlRun>> runs;
  for (int i = 0; i < 6; ++i)
    runs.push_back(std::make_unique<CurlRun>(
        server.start("/v1/completions", greedy_request("Tell me more", 200, true).dump())));
  int ok = 0, busy = 0;
  for (auto& run : runs) {
    const HttpResult r = run->finish();
    if (r.status == 200) {
      ++ok;
    } else {
      EXPECT_EQ(r.status, 503) << r.body;
      ++busy;
      EXPECT_EQ(r.json()["error"]["type"], "unavailable_error");
      EXPECT_EQ(r.json()["error"]["code"], "queue_full");
    }
  }
  // One runs, one waits; the rest are refused (requests that arrive after a finish may fit).
  EXPECT_GE(ok, 2);
  EXPECT_GE(busy, 1);
  EXPECT_EQ(server.post("/v1/completions", greedy_request("Hi", 2, false)).status, 200);
  EXPECT_GE(server.metric("jetmoe_requests_total{outcome=\"rejected\"}"), 1);
}

TEST_F(ServerConcurrency, ADisconnectedClientFreesItsSlotAtOnce) {
  // One slot: while a long request holds it, nothing else can run.
  ServerProcess server(model_, {"--parallel", "1", "--ctx-size", "4096"});
  const double generated_before = server.metric("jetmoe_generated_tokens_total");
  for (const bool stream : {true, false}) {
    SCOPED_TRACE(stream ? "streamed" : "whole");
    {
      RawConnection client(server.port());
      json body = greedy_request("Keep talking", 4000, stream);
      ASSERT_TRUE(client.send_text(raw_post("/v1/completions", body.dump())));
      if (stream) {
        // Two events: the stream is running. (Events arrive inside HTTP chunks.)
        const std::string got = client.read_until("data: ", std::chrono::seconds(20), nullptr, 2);
        ASSERT_TRUE(contains(got, "data: ")) << got;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));  // it is generating
      }
    }  // the client hangs up
    const Clock::time_point hung_up = Clock::now();
    const HttpResult next = server.post("/v1/completions", greedy_request("Hi", 3, false), {}, 30);
    EXPECT_EQ(next.status, 200) << next.body;
    const double waited = std::chrono::duration<double>(Clock::now() - hung_up).count();
    // 4000 tokens take far longer than this; the slot was freed within a few engine steps.
    EXPECT_LT(waited, 3.0);
  }
  EXPECT_EQ(server.metric("jetmoe_requests_total{outcome=\"cancelled\"}"), 2);
  // Neither ran to its end (together they made fewer tokens than one of them asked for).
  EXPECT_LT(server.metric("jetmoe_generated_tokens_total") - generated_before, 4000);
}

struct LoadFigures {
  int requests = 0, disconnected = 0;
  double seconds = 0, tokens_per_second = 0, p50 = 0, p99 = 0;
};

// One round of the load test: `clients` at once, every fourth one asking for a long stream and
// hanging up after its first event; checks every finished answer against `expected`.
LoadFigures run_load(const ServerProcess& server, const std::vector<std::string>& prompts,
                     const std::vector<std::string>& expected, int clients, int tokens) {
  LoadFigures figures;
  const Clock::time_point start = Clock::now();
  struct Client {
    size_t prompt;
    bool stream;
    std::unique_ptr<CurlRun> curl;
  };
  std::vector<Client> curls;
  std::vector<std::thread> leavers;
  for (int i = 0; i < clients; ++i) {
    const size_t prompt = size_t(i) % prompts.size();
    if (i % 4 == 3) {
      ++figures.disconnected;
      leavers.emplace_back([&server, &prompts, prompt, tokens] {
        RawConnection client(server.port());
        // Asks for far more than the others, so only a cancellation can end it early.
        client.send_text(raw_post("/v1/completions", greedy_request(prompts[prompt], 50 * tokens, true).dump()));
        client.read_until("data: ", std::chrono::seconds(60), nullptr, 2);
      });
      continue;
    }
    const bool stream = i % 2 == 0;
    curls.push_back({prompt, stream, std::make_unique<CurlRun>(server.start(
                                         "/v1/completions", greedy_request(prompts[prompt], tokens, stream).dump(),
                                         {}, 120))});
  }
  std::vector<double> latencies;
  int64_t tokens_done = 0;
  for (Client& c : curls) {
    const HttpResult r = c.curl->finish();
    const auto text = completion_text(r, c.stream);
    EXPECT_TRUE(text) << r.status << " " << r.body.substr(0, 300);
    if (text) {
      EXPECT_EQ(*text, expected[c.prompt]);
      tokens_done += tokens;
    }
    latencies.push_back(r.seconds);
  }
  for (std::thread& t : leavers) t.join();
  figures.requests = clients;
  figures.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  figures.tokens_per_second = double(tokens_done) / figures.seconds;
  figures.p50 = percentile(latencies, 0.5);
  figures.p99 = percentile(latencies, 0.99);
  return figures;
}

TEST_F(ServerConcurrency, LoadTestThirtyTwoClientsAgainstFourSlots) {
  ServerProcess server(model_, {"--parallel", "4", "--ctx-size", "512"});
  const std::vector<std::string> prompts = test_prompts();
  constexpr int kTokens = 32;
  constexpr int kClients = 32;

  // References, one request at a time; the first also gives the single-stream speed.
  std::vector<std::string> expected;
  double single_seconds = 0;
  for (const std::string& prompt : prompts) {
    const HttpResult r = server.post("/v1/completions", greedy_request(prompt, kTokens, true));
    const auto text = completion_text(r, true);
    ASSERT_TRUE(text) << r.body;
    expected.push_back(*text);
    single_seconds += r.seconds;
  }
  const double single_tokens_per_second = double(kTokens * int(prompts.size())) / single_seconds;

  // Round one warms up (threads, allocator); round two is measured, and memory after it must
  // be back where round one left it.
  run_load(server, prompts, expected, kClients, kTokens);
  auto settle = [&] {
    for (int i = 0; i < 100 && (server.metric("jetmoe_requests_running") != 0 ||
                                server.metric("jetmoe_requests_waiting") != 0); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  };
  settle();
  const int64_t baseline_kib = server.rss_kib();
  const double cancelled_before = server.metric("jetmoe_requests_total{outcome=\"cancelled\"}");
  const LoadFigures load = run_load(server, prompts, expected, kClients, kTokens);
  settle();
  EXPECT_EQ(server.metric("jetmoe_requests_running"), 0);
  EXPECT_EQ(server.metric("jetmoe_requests_waiting"), 0);
  const int64_t after_kib = server.rss_kib();
  // Slots' KV caches are allocated up front; what a round allocates it frees again. (Under
  // AddressSanitizer freed memory sits in its quarantine, so RSS says nothing there.)
#ifndef __SANITIZE_ADDRESS__
  EXPECT_LE(after_kib, baseline_kib + 16 * 1024) << "RSS grew from " << baseline_kib << " KiB to " << after_kib;
#endif
  // The clients that hung up after their first event were cancelled, not run to the end.
  EXPECT_EQ(server.metric("jetmoe_requests_total{outcome=\"cancelled\"}") - cancelled_before, load.disconnected);

  std::printf("[ load test ] %d requests (%d hung up early) against --parallel 4 in %.2f s: %.1f tokens/s aggregate "
              "vs %.1f tokens/s single stream; latency p50 %.2f s, p99 %.2f s; RSS %lld -> %lld KiB\n",
              load.requests, load.disconnected, load.seconds, load.tokens_per_second, single_tokens_per_second,
              load.p50, load.p99, static_cast<long long>(baseline_kib), static_cast<long long>(after_kib));
  RecordProperty("aggregate_tokens_per_second", std::to_string(load.tokens_per_second));
  RecordProperty("single_stream_tokens_per_second", std::to_string(single_tokens_per_second));
  RecordProperty("latency_p50_seconds", std::to_string(load.p50));
  RecordProperty("latency_p99_seconds", std::to_string(load.p99));
}

}  // namespace
}  // namespace jetmoe::e2e
