// `jetmoe serve` endpoint by endpoint, with curl against the real binary: results checked
// against the CLI's own generation path (an independent route through the same model), the
// reference tokenizer's ids, and a log-softmax of logits written by `jetmoe forward`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "server_harness.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ServerApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = server_detail::fresh_dir("jetmoe_server_api").string();
    model_ = make_text_model(dir_, 16, 2, 256);
    server_ = new ServerProcess(model_, {"--parallel", "2"});
  }
  static void TearDownTestSuite() {
    delete server_;
    fs::remove_all(dir_);
  }
  static const ServerProcess& server() { return *server_; }

  static json completion(const json& body) {
    const HttpResult r = server().post("/v1/completions", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body);
  }

  static inline std::string dir_, model_;
  static inline ServerProcess* server_ = nullptr;
};

TEST_F(ServerApi, HealthModelsAndThePage) {
  const HttpResult health = server().get("/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.json()["status"], "ok");

  const HttpResult models = server().get("/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  const json list = models.json();
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], "model");  // the directory's name
  EXPECT_EQ(list["data"][0]["object"], "model");
  EXPECT_EQ(server().get("/v1/models/model").status, 200);
  EXPECT_EQ(server().get("/v1/models/other").status, 404);

  const HttpResult page = server().get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_TRUE(contains(page.body, "<script>") && contains(page.body, "/v1/chat/completions"));
  // Self-contained: nothing loaded from elsewhere.
  EXPECT_FALSE(contains(page.body, "src=\"http")) << "the page must not load scripts from elsewhere";
  EXPECT_FALSE(contains(page.body, "href=\"http"));
}

TEST_F(ServerApi, TokenizeAndDetokenizeMatchTheReferenceTokenizer) {
  // The spec's reference prompt (§1.10) as the reference tokenizer encodes it, with BOS.
  const std::vector<int32_t> expected = {1, 306, 4658, 278, 6593, 310, 2834, 338};
  HttpResult r = server().post("/tokenize", json{{"content", "I believe the meaning of life is"}, {"add_special", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["tokens"].get<std::vector<int32_t>>(), expected);
  r = server().post("/tokenize", json{{"content", "I believe the meaning of life is"}});
  EXPECT_EQ(r.json()["tokens"].get<std::vector<int32_t>>(), std::vector<int32_t>(expected.begin() + 1, expected.end()));
  r = server().post("/tokenize", json{{"content", "Hi"}, {"with_pieces", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["tokens"][0]["piece"], "\xE2\x96\x81Hi");

  r = server().post("/detokenize", json{{"tokens", std::vector<int32_t>(expected.begin() + 1, expected.end())}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["content"], "I believe the meaning of life is");
  EXPECT_EQ(server().post("/detokenize", json{{"tokens", {1, 32000}}}).status, 400);
  EXPECT_EQ(server().post("/tokenize", json{{"text", "x"}}).status, 400);
}

TEST_F(ServerApi, GreedyCompletionEqualsTheCliGeneration) {
  const std::string prompt = "Once upon a time";
  const CliResult cli = run_cli({"generate", "-m", model_, "-p", prompt, "-n", "24", "--temp", "0", "--ignore-eos"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  const json r = completion({{"model", "model"}, {"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0},
                             {"ignore_eos", true}});
  // The CLI echoes the prompt, then the continuation, then a newline.
  EXPECT_EQ(prompt + r["choices"][0]["text"].get<std::string>() + "\n", cli.out);
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["model"], "model");
  EXPECT_TRUE(r["id"].get<std::string>().rfind("cmpl-", 0) == 0);
  EXPECT_GT(r["created"].get<int64_t>(), 1600000000);
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["prompt_tokens"], 5);  // BOS + 4
  EXPECT_EQ(r["usage"]["completion_tokens"], 24);
  EXPECT_EQ(r["usage"]["total_tokens"], 29);

  // Token ids as the prompt give the same continuation.
  const json ids = completion({{"prompt", {1, 9038, 2501, 263, 931}}, {"max_tokens", 24}, {"temperature", 0},
                               {"ignore_eos", true}});
  EXPECT_EQ(ids["choices"][0]["text"], r["choices"][0]["text"]);
}

TEST_F(ServerApi, GreedyChatEqualsTheCliChat) {
  const CliResult cli = run_cli({"chat", "-m", model_, "-n", "12", "--temp", "0"}, "Tell me a story\n");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  const HttpResult r = server().post(
      "/v1/chat/completions",
      json{{"model", "model"}, {"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}}, {"max_tokens", 12},
           {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_TRUE(j["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>() + "\n", cli.out);
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 5);

  // Text given as content parts reads the same.
  const HttpResult parts = server().post(
      "/v1/chat/completions",
      json{{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Tell me "}}, {{"type", "text"}, {"text", "a story"}}}}}}},
           {"max_tokens", 12}, {"temperature", 0}});
  ASSERT_EQ(parts.status, 200) << parts.body;
  EXPECT_EQ(parts.json()["choices"][0]["message"]["content"], j["choices"][0]["message"]["content"]);
}

TEST_F(ServerApi, LogprobsAreTheLogSoftmaxOfTheModelsLogits) {
  // Independent reference: the logits `jetmoe forward` writes for the prompt.
  const std::vector<int32_t> prompt = {1, 306, 4658, 278, 6593};
  const std::string npy = dir_ + "/logits.npy";
  const CliResult fwd = run_cli({"forward", "-m", model_, "--ids", "1,306,4658,278,6593", "--logits-out", npy});
  ASSERT_EQ(fwd.exit_code, 0) << fwd.err;
  const std::string raw = read_whole_file(npy);
  // .npy version 1: 6 magic bytes, 2 version bytes, a little-endian u16 header length, the
  // header, then the float32 [T, V] data.
  ASSERT_GT(raw.size(), 10u);
  const size_t header_end = 10 + (size_t(uint8_t(raw[8])) | size_t(uint8_t(raw[9])) << 8);
  ASSERT_EQ(raw.size() - header_end, prompt.size() * 32000 * 4);
  std::vector<float> last(32000);
  std::memcpy(last.data(), raw.data() + header_end + (prompt.size() - 1) * 32000 * 4, 32000 * 4);
  double max = -INFINITY, sum = 0;
  for (float x : last) max = std::max(max, double(x));
  for (float x : last) sum += std::exp(double(x) - max);
  const double lse = max + std::log(sum);
  const int32_t argmax = int32_t(std::max_element(last.begin(), last.end()) - last.begin());

  const json r = completion({{"prompt", prompt}, {"max_tokens", 1}, {"temperature", 0}, {"logprobs", 3},
                             {"ignore_eos", true}});
  const json& lp = r["choices"][0]["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), 1u) << r.dump();
  // float32 logits through two log-softmax implementations: agree to ~1e-5 relative.
  EXPECT_NEAR(lp["token_logprobs"][0].get<double>(), double(last[size_t(argmax)]) - lse, 1e-4);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 3u);
  EXPECT_EQ(lp["text_offset"][0], 0);

  const HttpResult chat = server().post(
      "/v1/chat/completions", json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4},
                                   {"temperature", 0}, {"logprobs", true}, {"top_logprobs", 2}});
  ASSERT_EQ(chat.status, 200) << chat.body;
  const json content = chat.json()["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 4u);
  for (const json& token : content) {
    ASSERT_EQ(token["top_logprobs"].size(), 2u);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(token["token"], token["top_logprobs"][0]["token"]);
    EXPECT_LE(token["logprob"].get<double>(), 0.0);
    EXPECT_GE(token["top_logprobs"][0]["logprob"].get<double>(), token["top_logprobs"][1]["logprob"].get<double>());
    EXPECT_FALSE(token["bytes"].empty());
  }
}

TEST_F(ServerApi, StopStringsSeedsAndLimits) {
  const json base = {{"prompt", "The weather today"}, {"max_tokens", 40}, {"temperature", 0}, {"ignore_eos", true}};
  const std::string full = completion(base)["choices"][0]["text"];
  ASSERT_GT(full.size(), 20u);
  // A stop string taken from the middle of the greedy text cuts it just before.
  const std::string stop = full.substr(10, 4);
  json with_stop = base;
  with_stop["stop"] = {stop, "never appears in this text"};
  const json stopped = completion(with_stop);
  EXPECT_EQ(stopped["choices"][0]["text"], full.substr(0, full.find(stop)));
  EXPECT_EQ(stopped["choices"][0]["finish_reason"], "stop");

  // The same seed samples the same text; another seed (almost surely) another.
  json sampled = {{"prompt", "The weather today"}, {"max_tokens", 24}, {"temperature", 1.0}, {"seed", 1234},
                  {"ignore_eos", true}};
  const std::string a = completion(sampled)["choices"][0]["text"];
  EXPECT_EQ(completion(sampled)["choices"][0]["text"], a);
  sampled["seed"] = 1235;
  EXPECT_NE(completion(sampled)["choices"][0]["text"], a);

  // max_tokens bounds the reply.
  const json short_reply = completion({{"prompt", "The weather today"}, {"max_tokens", 3}, {"ignore_eos", true}});
  EXPECT_EQ(short_reply["usage"]["completion_tokens"], 3);
  EXPECT_EQ(short_reply["choices"][0]["finish_reason"], "length");
}

TEST_F(ServerApi, StreamingDeltasAddUpToTheWholeAnswer) {
  for (const bool chat : {false, true}) {
    SCOPED_TRACE(chat ? "chat" : "completions");
    const std::string path = chat ? "/v1/chat/completions" : "/v1/completions";
    json body = {{"max_tokens", 20}, {"temperature", 0}, {"ignore_eos", true}};
    if (chat) body["messages"] = {{{"role", "user"}, {"content", "Write a poem"}}};
    else body["prompt"] = "Write a poem";
    const json whole = server().post(path, body).json();

    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    const HttpResult streamed = server().post(path, body);
    ASSERT_EQ(streamed.status, 200) << streamed.body;
    const std::vector<std::string> events = sse_payloads(streamed.body);
    ASSERT_GE(events.size(), 4u) << streamed.body;
    EXPECT_EQ(events.back(), "[DONE]");
    std::string text;
    std::string finish;
    json usage;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
      const json chunk = json::parse(events[i]);
      EXPECT_EQ(chunk["object"], chat ? "chat.completion.chunk" : "text_completion");
      EXPECT_EQ(chunk["id"], json::parse(events[0])["id"]);
      if (chunk["choices"].empty()) {  // the usage chunk comes last
        usage = chunk["usage"];
        EXPECT_EQ(i + 2, events.size());
        continue;
      }
      EXPECT_TRUE(chunk["usage"].is_null());
      const json& choice = chunk["choices"][0];
      if (chat && i == 0) {
        EXPECT_EQ(choice["delta"]["role"], "assistant");
      }
      text += chat ? choice["delta"].value("content", "") : choice["text"].get<std::string>();
      if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
    }
    EXPECT_EQ(text, chat ? whole["choices"][0]["message"]["content"] : whole["choices"][0]["text"]);
    EXPECT_EQ(finish, "length");
    // Same counts (how much of the prompt a slot's cache reused may differ).
    for (const char* count : {"prompt_tokens", "completion_tokens", "total_tokens"})
      EXPECT_EQ(usage[count], whole["usage"][count]) << count;

    // Without include_usage there is no usage chunk and no usage field.
    body.erase("stream_options");
    const std::vector<std::string> plain = sse_payloads(server().post(path, body).body);
    ASSERT_GE(plain.size(), 2u);
    EXPECT_FALSE(json::parse(plain[plain.size() - 2]).contains("usage"));
    EXPECT_FALSE(json::parse(plain[plain.size() - 2])["choices"].empty());
  }
}

TEST_F(ServerApi, MetricsCountTokensAndRequests) {
  const double generated_before = server().metric("jetmoe_generated_tokens_total");
  completion({{"prompt", "Count me"}, {"max_tokens", 7}, {"ignore_eos", true}});
  const HttpResult metrics = server().get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  for (const char* name : {"jetmoe_prompt_tokens_total", "jetmoe_generated_tokens_total", "jetmoe_requests_running",
                           "jetmoe_requests_waiting", "jetmoe_kv_cache_used_tokens", "jetmoe_kv_cache_usage_ratio",
                           "jetmoe_prompt_tokens_per_second", "jetmoe_generated_tokens_per_second"})
    EXPECT_TRUE(contains(metrics.body, std::string("# TYPE ") + name)) << name;
  EXPECT_EQ(server().metric("jetmoe_generated_tokens_total"), generated_before + 7);
  EXPECT_EQ(server().metric("jetmoe_kv_cache_capacity_tokens"), 2 * 256);
  EXPECT_EQ(server().metric("jetmoe_kv_cache_bytes"), 2 * 256 * (2 * 2 * 2 * 8) * 4);  // f32 rows by default
  EXPECT_EQ(server().metric("jetmoe_requests_running"), 0);
}

// Separate servers: flags from the environment, keys, shutdown.
class ServerProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = server_detail::fresh_dir("jetmoe_server_proc").string();
    model_ = make_text_model(dir_, 16, 2, 256);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static inline std::string dir_, model_;
};

TEST_F(ServerProcessTest, ApiKeyIsRequiredExceptForHealthAndThePage) {
  ServerProcess server(model_, {"--api-key", "s3cret"});
  const json body = {{"prompt", "Hi"}, {"max_tokens", 2}};
  const HttpResult missing = server.post("/v1/completions", body);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.json()["error"]["type"], "authentication_error");
  EXPECT_EQ(server.post("/v1/completions", body, {"Authorization: Bearer wrong"}).status, 401);
  EXPECT_EQ(server.post("/v1/completions", body, {"Authorization: Bearer s3cret"}).status, 200);
  EXPECT_EQ(server.get("/v1/models").status, 401);
  EXPECT_EQ(server.get("/metrics").status, 401);
  EXPECT_EQ(server.get("/health").status, 200);
  EXPECT_EQ(server.get("/").status, 200);
}

TEST_F(ServerProcessTest, FlagsComeFromTheEnvironmentAndTheCommandLineWins) {
  ServerProcess server(model_, {"--api-key", "from-flag"},
                       {"JETMOE_API_KEY=from-env", "JETMOE_PARALLEL=3", "JETMOE_CTX_SIZE=64", "JETMOE_ALIAS=tiny"});
  const std::vector<std::string> key = {"Authorization: Bearer from-flag"};
  EXPECT_EQ(server.get("/v1/models", {"Authorization: Bearer from-env"}).status, 401);
  const HttpResult models = server.get("/v1/models", key);
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.json()["data"][0]["id"], "tiny");
  const HttpResult metrics = server.get("/metrics", key);
  EXPECT_TRUE(contains(metrics.body, "\njetmoe_slots 3\n")) << metrics.body;
  EXPECT_TRUE(contains(metrics.body, "\njetmoe_kv_cache_capacity_tokens 192\n")) << metrics.body;
}

TEST_F(ServerProcessTest, CacheTypeSetsEverySlotsCacheAndTheBytesReported) {
  // make_text_model(16, 2): 2 layers x (K, V) x 2 heads x 8 values per position.
  const double values_per_position = 2 * 2 * 2 * 8;
  ServerProcess f16(model_, {"--parallel", "2", "--ctx-size", "32", "--cache-type", "f16"});
  EXPECT_EQ(f16.metric("jetmoe_kv_cache_bytes"), 2 * 32 * values_per_position * 2);
  EXPECT_TRUE(contains(f16.log(), "(f16 KV cache)")) << f16.log();
  const HttpResult r = f16.post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 5}, {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["usage"]["completion_tokens"], 5);

  // From the environment as every flag; the command line wins.
  ServerProcess from_env(model_, {"--parallel", "1", "--ctx-size", "32"}, {"JETMOE_CACHE_TYPE=f16"});
  EXPECT_EQ(from_env.metric("jetmoe_kv_cache_bytes"), 32 * values_per_position * 2);
  ServerProcess flag_wins(model_, {"--parallel", "1", "--ctx-size", "32", "-ctk", "f32"}, {"JETMOE_CACHE_TYPE=f16"});
  EXPECT_EQ(flag_wins.metric("jetmoe_kv_cache_bytes"), 32 * values_per_position * 4);
  const CliResult bad = run_cli({"serve", "-m", model_, "--port", "0"}, "", {"JETMOE_CACHE_TYPE=q4"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_TRUE(contains(bad.err, "--cache-type")) << bad.err;
}

TEST_F(ServerProcessTest, SignalsShutItDownCleanlyEvenMidStream) {
  for (const int signal : {SIGTERM, SIGINT}) {
    ServerProcess server(model_, {});
    CurlRun stream = server.start("/v1/completions",
                                  json{{"prompt", "Go on"}, {"max_tokens", 4000}, {"ignore_eos", true}, {"stream", true}}.dump());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    bool timed_out = false;
    EXPECT_EQ(server.stop(signal, std::chrono::seconds(15), &timed_out), 0) << server.log();
    EXPECT_FALSE(timed_out);
    const HttpResult r = stream.finish();
    EXPECT_TRUE(contains(server.log(), "serve: shutting down")) << server.log();
    (void)r;  // the stream ended (with an error event or a cut connection); it did not hang
  }
}

TEST_F(ServerProcessTest, AModelThatCannotLoadIsAnErrorAndABusyPortToo) {
  const CliResult missing = run_cli({"serve", "-m", dir_ + "/no-such-model", "--port", "0"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.err, "no-such-model")) << missing.err;

  ServerProcess server(model_, {});
  const auto dir = server_detail::fresh_dir("jetmoe_busy_port");
  const pid_t second = server_detail::spawn({JETMOE_BINARY, "serve", "-m", model_, "--port", std::to_string(server.port())},
                                            (dir / "out").string(), (dir / "err").string());
  EXPECT_EQ(server_detail::wait_exit(second, std::chrono::seconds(20)), 1);
  EXPECT_TRUE(contains(read_whole_file(dir / "err"), "cannot bind")) << read_whole_file(dir / "err");
  fs::remove_all(dir);
  EXPECT_EQ(run_cli({"serve", "-m", model_, "--parallel", "0"}).exit_code, 2);
}

}  // namespace
}  // namespace jetmoe::e2e
