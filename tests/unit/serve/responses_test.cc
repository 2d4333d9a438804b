// The OpenAI wire format built from job events, logprobs against a direct log-softmax, the
// Prometheus text, and an API server with no model yet (health 503, errors as JSON).
#include <gtest/gtest.h>
#include <httplib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "formats/tokenizer/tokenizer.h"
#include "serve/api_server.h"
#include "serve/metrics.h"
#include "serve/openai_format.h"
#include "serve/token_logprobs.h"

namespace jetmoe::serve {
namespace {

using nlohmann::json;

const Tokenizer& llama2() {
  static const Tokenizer tokenizer = [] {
    const char* env = std::getenv("JETMOE_TOKENIZER_ASSETS");
    const std::string dir = env && *env ? env : std::string(JETMOE_SOURCE_DIR) + "/build/tokenizer-assets";
    return Tokenizer::load(dir + "/llama2/tokenizer.json");
  }();
  return tokenizer;
}

JobEvent token_event(int32_t id, std::string text) { return JobEvent{SampledToken{id, -0.5f, {}}, std::move(text)}; }

JobOutcome finished(FinishReason reason, int64_t prompt, int64_t generated) {
  JobOutcome o;
  o.finish_reason = reason;
  o.prompt_tokens = prompt;
  o.generated_tokens = generated;
  return o;
}

TEST(OpenAiFormat, WholeChatCompletion) {
  const ResponseMeta meta{"chatcmpl-1", 1700000000, "tiny", Endpoint::ChatCompletions, false};
  CompletionBuilder builder(meta, llama2());
  builder.add(token_event(15043, "Hello"));
  builder.add(token_event(3186, " world"));
  builder.add(JobEvent{std::nullopt, "!"});
  const json r = builder.response(finished(FinishReason::Eos, 5, 3));
  EXPECT_EQ(r["id"], "chatcmpl-1");
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["created"], 1700000000);
  EXPECT_EQ(r["model"], "tiny");
  EXPECT_EQ(r["choices"][0]["message"], (json{{"role", "assistant"}, {"content", "Hello world!"}}));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");  // EOS is "stop" to OpenAI clients
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(r["usage"]["completion_tokens"], 3);
  EXPECT_EQ(r["usage"]["total_tokens"], 8);
}

TEST(OpenAiFormat, CompletionLogprobsAreParallelArrays) {
  const ResponseMeta meta{"cmpl-1", 1, "tiny", Endpoint::Completions, true};
  CompletionBuilder builder(meta, llama2());
  JobEvent first = token_event(15043, "Hello");
  first.token->top = {{15043, -0.5f}, {3186, -1.5f}};
  builder.add(first);
  builder.add(token_event(3186, " world"));
  const json lp = builder.response(finished(FinishReason::Length, 1, 2))["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], (json{" Hello", " world"}));  // pieces with '▁' as a space
  EXPECT_EQ(lp["token_logprobs"], (json{-0.5, -0.5}));
  EXPECT_EQ(lp["top_logprobs"][0], (json{{" Hello", -0.5}, {" world", -1.5}}));
  EXPECT_EQ(lp["text_offset"], (json{0, 5}));
}

TEST(OpenAiFormat, StreamChunksThenFinishThenUsageThenDone) {
  const ResponseMeta meta{"chatcmpl-2", 1, "tiny", Endpoint::ChatCompletions, false};
  StreamEncoder encoder(meta, llama2(), /*include_usage=*/true);
  std::string stream = encoder.begin();
  stream += encoder.event(token_event(15043, "Hello"));
  EXPECT_EQ(encoder.event(token_event(29991, "")), "");  // text held back, no logprobs: nothing to send
  stream += encoder.end(finished(FinishReason::Length, 4, 2));
  std::vector<json> chunks;
  size_t at = 0;
  while (at < stream.size()) {
    const size_t end = stream.find("\n\n", at);
    ASSERT_NE(end, std::string::npos);
    ASSERT_EQ(stream.substr(at, 6), "data: ");
    const std::string payload = stream.substr(at + 6, end - at - 6);
    if (payload == "[DONE]") {
      EXPECT_EQ(end + 2, stream.size());
      break;
    }
    chunks.push_back(json::parse(payload));
    at = end + 2;
  }
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_EQ(chunks[1]["choices"][0]["delta"]["content"], "Hello");
  EXPECT_TRUE(chunks[1]["usage"].is_null());
  EXPECT_EQ(chunks[2]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chunks[2]["choices"][0]["delta"], json::object());
  EXPECT_TRUE(chunks[3]["choices"].empty());
  EXPECT_EQ(chunks[3]["usage"]["total_tokens"], 6);
  for (const json& c : chunks) EXPECT_EQ(c["object"], "chat.completion.chunk");

  // A failed job ends the stream with an error event.
  JobOutcome failed;
  failed.status = JobStatus::Failed;
  failed.error = "boom";
  const std::string error = StreamEncoder(meta, llama2(), false).end(failed);
  EXPECT_EQ(json::parse(error.substr(6))["error"]["message"], "boom");
}

TEST(TokenLogprobs, AreTheLogSoftmaxOfTheLogits) {
  const std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x));
  const SampledToken t = token_logprobs(logits, 4, 3);
  EXPECT_NEAR(t.logprob, 0.5 - std::log(sum), 1e-6);
  ASSERT_EQ(t.top.size(), 3u);
  EXPECT_EQ(t.top[0].id, 1);  // ties: the lower id first
  EXPECT_EQ(t.top[1].id, 3);
  EXPECT_EQ(t.top[2].id, 0);
  EXPECT_NEAR(t.top[2].logprob, 1.0 - std::log(sum), 1e-6);
  EXPECT_EQ(token_logprobs(logits, 0, 100).top.size(), logits.size());
  EXPECT_EQ(token_text(llama2(), 13), "\n");  // byte piece <0x0A>
}

TEST(Metrics, PrometheusTextHasTypesAndValues) {
  Metrics m;
  m.add_prompt_tokens(10, 0.5);
  m.add_generated_tokens(4, 2.0);
  m.count_request("finished");
  m.count_http_response(200);
  m.set_engine_gauges({1, 2, 30, 100, 4, 4096});
  const std::string text = m.prometheus_text();
  for (const char* line : {"# TYPE jetmoe_prompt_tokens_total counter\njetmoe_prompt_tokens_total 10\n",
                           "jetmoe_prompt_tokens_per_second 20\n", "jetmoe_generated_tokens_per_second 2\n",
                           "jetmoe_requests_running 1\n", "jetmoe_requests_waiting 2\n",
                           "jetmoe_kv_cache_usage_ratio 0.3\n", "jetmoe_kv_cache_bytes 4096\n",
                           "jetmoe_requests_total{outcome=\"finished\"} 1\n",
                           "jetmoe_http_responses_total{status=\"200\"} 1\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\nin:\n" << text;
}

TEST(ApiServer, AnswersWhileTheModelLoads) {
  Metrics metrics;
  ServerOptions options;
  options.port = 0;
  options.api_key = "k";
  ApiServer server(options, metrics);
  const int port = server.bind();
  server.start();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  // The socket is bound and listening, so the connection waits in the backlog until served.
  const auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(json::parse(health->body)["status"], "loading");
  const httplib::Headers key = {{"Authorization", "Bearer k"}};
  const auto completion = client.Post("/v1/completions", key, R"({"prompt": "x"})", "application/json");
  ASSERT_TRUE(completion);
  EXPECT_EQ(completion->status, 503);
  EXPECT_EQ(json::parse(completion->body)["error"]["type"], "unavailable_error");
  const auto unauthorized = client.Post("/v1/completions", R"({"prompt": "x"})", "application/json");
  ASSERT_TRUE(unauthorized);
  EXPECT_EQ(unauthorized->status, 401);
  server.stop();
}

}  // namespace
}  // namespace jetmoe::serve
