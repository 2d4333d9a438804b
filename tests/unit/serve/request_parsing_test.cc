// Reading OpenAI request bodies: defaults, every field's checks, and the prompt each endpoint
// builds (the chat prompt is the chat template's tokenization, checked by its own tests).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "formats/tokenizer/tokenizer.h"
#include "runtime/chat_template.h"
#include "serve/api_error.h"
#include "serve/completion_request.h"
#include "serve/json_fields.h"

namespace jetmoe::serve {
namespace {

using nlohmann::json;

const Tokenizer& llama2() {
  static const Tokenizer tokenizer = [] {
    const char* env = std::getenv("JETMOE_TOKENIZER_ASSETS");
    const std::string dir = env && *env ? env : std::string(JETMOE_SOURCE_DIR) + "/build/tokenizer-assets";
    const std::string path = dir + "/llama2/tokenizer.json";
    if (!std::filesystem::exists(path)) throw std::runtime_error("missing " + path + ": run tools/tokenizer/fetch_assets.sh");
    return Tokenizer::load(path);
  }();
  return tokenizer;
}

RequestLimits limits() {
  RequestLimits l;
  l.model_id = "tiny";
  l.context_size = 64;
  l.vocab_size = 32000;
  l.max_tokens_limit = 100;
  l.max_stop_strings = 2;
  l.max_stop_bytes = 8;
  return l;
}

CompletionRequest parse(const json& body, Endpoint endpoint = Endpoint::Completions) {
  return parse_completion_request(body, endpoint, llama2(), limits());
}

// The status of the ApiError that reading `body` raises (0 if none).
int error_status(const json& body, Endpoint endpoint = Endpoint::Completions) {
  try {
    parse(body, endpoint);
  } catch (const ApiError& e) {
    return e.status();
  }
  return 0;
}

TEST(RequestParsing, DefaultsFollowOpenAi) {
  const CompletionRequest r = parse({{"prompt", "I believe the meaning of life is"}});
  EXPECT_EQ(r.prompt, (std::vector<int32_t>{1, 306, 4658, 278, 6593, 310, 2834, 338}));
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.0f);
  EXPECT_FALSE(r.seed);
  EXPECT_EQ(r.max_tokens, 100);  // the server's limit
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.top_logprobs, -1);
  EXPECT_TRUE(r.stop.empty());
}

TEST(RequestParsing, EveryFieldIsRead) {
  const CompletionRequest r =
      parse({{"model", "tiny"}, {"prompt", {1, 2, 3}}, {"max_tokens", 7}, {"temperature", 0.5}, {"top_p", 0.9},
             {"top_k", 5}, {"min_p", 0.1}, {"seed", -1}, {"stop", "x"}, {"presence_penalty", 1.5},
             {"frequency_penalty", -1}, {"stream", true}, {"stream_options", {{"include_usage", true}}},
             {"logprobs", 3}, {"ignore_eos", true}});
  EXPECT_EQ(r.prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 5);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_EQ(*r.seed, UINT64_MAX);  // -1 wraps
  EXPECT_EQ(r.stop, std::vector<std::string>{"x"});
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -1.0f);
  EXPECT_TRUE(r.stream && r.include_usage && r.ignore_eos);
  EXPECT_EQ(r.top_logprobs, 3);
  // A batch of one prompt is that prompt; 16.0 is an integer.
  EXPECT_EQ(parse({{"prompt", {"Hi"}}, {"max_tokens", 16.0}}).prompt, llama2().encode("Hi"));
}

TEST(RequestParsing, ChatPromptIsTheTemplatesTokenizationAndStopsAtTheNextTurn) {
  const json body = {{"messages", {{{"role", "developer"}, {"content", "Be brief."}},
                                   {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Hi"}}}}}}},
                     {"logprobs", true},
                     {"top_logprobs", 2}};
  const CompletionRequest r = parse(body, Endpoint::ChatCompletions);
  const std::vector<ChatMessage> messages = {{"system", "Be brief."}, {"user", "Hi"}};
  EXPECT_EQ(r.prompt, tokenize_chat(llama2(), messages, true));
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_NE(std::find(r.stop.begin(), r.stop.end(), "<|user|>"), r.stop.end());
}

TEST(RequestParsing, BadRequestsNameTheirStatus) {
  EXPECT_EQ(error_status({{"model", "gpt-4"}, {"prompt", "x"}}), 404);
  EXPECT_EQ(error_status(json::object()), 400);
  EXPECT_EQ(error_status({{"prompt", "x"}, {"max_tokens", 101}}), 400);
  EXPECT_EQ(error_status({{"prompt", "x"}, {"max_tokens", 0}}), 400);
  EXPECT_EQ(error_status({{"prompt", "x"}, {"temperature", 2.1}}), 400);
  EXPECT_EQ(error_status({{"prompt", "x"}, {"stop", {"a", "b", "c"}}}), 400);
  EXPECT_EQ(error_status({{"prompt", "x"}, {"stop", "123456789"}}), 400);  // 9 bytes > 8
  EXPECT_EQ(error_status({{"prompt", "x"}, {"n", 3}}), 400);
  EXPECT_EQ(error_status({{"prompt", "x"}, {"echo", true}}), 400);
  EXPECT_EQ(error_status({{"prompt", "x"}, {"logit_bias", {{"5", 1}}}}), 400);
  EXPECT_EQ(error_status({{"prompt", "x"}, {"logprobs", 21}}), 400);
  EXPECT_EQ(error_status({{"prompt", std::vector<int32_t>(65, 5)}}), 400);  // longer than the context
  EXPECT_EQ(error_status({{"prompt", std::vector<int32_t>(64, 5)}}), 0);    // exactly the context
  EXPECT_EQ(error_status({{"messages", json::array()}}, Endpoint::ChatCompletions), 400);
  EXPECT_EQ(error_status({{"messages", {{{"role", "tool"}, {"content", "x"}}}}}, Endpoint::ChatCompletions), 400);
  try {
    parse({{"prompt", "x"}, {"top_p", "high"}});
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param(), "top_p");
    EXPECT_EQ(std::string(e.what()), "'top_p' must be a number, got a string");
    EXPECT_EQ(e.to_json()["error"]["type"], "invalid_request_error");
  }
}

TEST(JsonFields, BodiesAreObjectsOfLimitedDepth) {
  EXPECT_NO_THROW(parse_request_body(R"({"a": [[[1]]]})"));
  EXPECT_THROW(parse_request_body("[]"), ApiError);
  EXPECT_THROW(parse_request_body(""), ApiError);
  EXPECT_THROW(parse_request_body("{\"a\": \"\xC3\x28\"}"), ApiError);
  std::string nested = "{\"a\": ";
  for (int i = 0; i < kMaxJsonDepth; ++i) nested += "[";
  for (int i = 0; i < kMaxJsonDepth; ++i) nested += "]";
  EXPECT_THROW(parse_request_body(nested + "}"), ApiError);
  std::string fits = "{\"a\": ";
  for (int i = 0; i < kMaxJsonDepth - 2; ++i) fits += "[";
  for (int i = 0; i < kMaxJsonDepth - 2; ++i) fits += "]";
  EXPECT_NO_THROW(parse_request_body(fits + "}"));
}

}  // namespace
}  // namespace jetmoe::serve
