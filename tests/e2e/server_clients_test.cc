// Real clients against `jetmoe serve`: the official OpenAI SDK for Node (tools/serve,
// installed by scripts/install-deps.sh) must get, whole and streamed, exactly what curl gets;
// the chat page, driven in headless Chromium, must show a reply that streamed in.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server_harness.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(ServerClients, TheOpenAiSdkGetsWhatCurlGets) {
  const std::string script = std::string(JETMOE_SOURCE_DIR) + "/tools/serve/openai_client.mjs";
  ASSERT_TRUE(fs::exists(std::string(JETMOE_SOURCE_DIR) + "/tools/serve/node_modules/openai"))
      << "the openai npm package is missing: run scripts/install-deps.sh";
  const auto dir = server_detail::fresh_dir("jetmoe_server_clients");
  const std::string model = make_text_model(dir.string(), 16, 2, 256);
  ServerProcess server(model, {"--api-key", "sdk-key"});
  const std::vector<std::string> key = {"Authorization: Bearer sdk-key"};

  const pid_t node = server_detail::spawn({"node", script, server.url("/v1"), "model", "sdk-key"},
                                          (dir / "out").string(), (dir / "err").string());
  ASSERT_EQ(server_detail::wait_exit(node, std::chrono::seconds(120)), 0) << read_whole_file(dir / "err");
  const json sdk = json::parse(read_whole_file(dir / "out"));

  // The same requests through curl.
  const json chat = server.post("/v1/chat/completions",
                                json{{"model", "model"}, {"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}},
                                     {"max_tokens", 12}, {"temperature", 0}},
                                key).json();
  const json completion = server.post("/v1/completions",
                                      json{{"model", "model"}, {"prompt", "Once upon a time"}, {"max_tokens", 12},
                                           {"temperature", 0}},
                                      key).json();
  EXPECT_EQ(sdk["chat"], chat["choices"][0]["message"]["content"]);
  EXPECT_EQ(sdk["chat_streamed"], sdk["chat"]);
  EXPECT_EQ(sdk["chat_finish"], chat["choices"][0]["finish_reason"]);
  EXPECT_EQ(sdk["chat_streamed_finish"], chat["choices"][0]["finish_reason"]);
  EXPECT_EQ(sdk["chat_usage"]["completion_tokens"], chat["usage"]["completion_tokens"]);
  EXPECT_EQ(sdk["chat_streamed_usage"]["prompt_tokens"], chat["usage"]["prompt_tokens"]);
  EXPECT_EQ(sdk["completion"], completion["choices"][0]["text"]);
  EXPECT_EQ(sdk["completion_streamed"], sdk["completion"]);
  EXPECT_EQ(sdk["models"], json::array({"model"}));
  EXPECT_EQ(sdk["error_status"], 400);
  fs::remove_all(dir);
}

TEST(ServerClients, TheChatPageStreamsAReplyInHeadlessChromium) {
  const std::string script = std::string(JETMOE_SOURCE_DIR) + "/tools/serve/chat_page_check.mjs";
  const auto dir = server_detail::fresh_dir("jetmoe_server_page");
  const std::string model = make_text_model(dir.string(), 16, 2, 256);
  ServerProcess server(model, {});
  // The screenshot is kept beside the build's binaries: <build>/test-artifacts/chat_page.png.
  const fs::path artifacts = fs::path(JETMOE_BINARY).parent_path().parent_path() / "test-artifacts";
  fs::create_directories(artifacts);
  const std::string screenshot = (artifacts / "chat_page.png").string();
  fs::remove(screenshot);

  const pid_t node = server_detail::spawn(
      {"node", "--experimental-websocket", "--no-warnings", script, server.url("/"), screenshot},
      (dir / "out").string(), (dir / "err").string());
  ASSERT_EQ(server_detail::wait_exit(node, std::chrono::seconds(120)), 0)
      << read_whole_file(dir / "err") << read_whole_file(dir / "out");
  const json state = json::parse(read_whole_file(dir / "out"));
  EXPECT_EQ(state["user"], "Tell me a story");
  EXPECT_TRUE(state["done"].get<bool>());
  EXPECT_FALSE(state["reply"].get<std::string>().empty());
  // The reply grew in several steps: it streamed.
  EXPECT_GT(state["distinct"].get<int>(), 2) << state.dump();
  EXPECT_GT(fs::file_size(screenshot), 1000u);
  // The page samples (OpenAI's default temperature), so its text is not compared with anything;
  // the server's log shows which route answered.
  EXPECT_TRUE(contains(server.log(), "POST /v1/chat/completions -> 200")) << server.log();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace jetmoe::e2e
