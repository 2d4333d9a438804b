// `jetmoe train` end to end: shards from `jetmoe prepare`, a two-phase mixture, a short run that
// writes metrics, a plot and an HF-layout checkpoint; resuming continues to the same losses; bad
// configs exit 1 naming the field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class TrainCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jetmoe_train_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // A character-level tokenizer: a..z are ids 4..29, '▁' 3, </s> 2.
    std::string vocab = R"("<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3)";
    for (char c = 'a'; c <= 'z'; ++c) vocab += std::string(", \"") + c + "\": " + std::to_string(4 + (c - 'a'));
    write("tokenizer.json", R"({"added_tokens": [{"id": 0, "content": "<unk>", "special": true},
        {"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true}],
      "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
      "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": false, "vocab": {)" + vocab + "}, \"merges\": []}}");
    std::string news, fiction;
    for (int i = 0; i < 60; ++i) news += "the market rose today and the bank said so\n";
    for (int i = 0; i < 60; ++i) fiction += "once upon a time a fox ran home\n";
    write("raw/news.txt", news);
    write("raw/fiction.txt", fiction);
    for (const char* name : {"news", "fiction"}) {
      const CliResult r = run_cli({"prepare", "--tokenizer", path("tokenizer.json"), "--input",
                                   path(std::string("raw/") + name + ".txt"), "--out", path(std::string("shards/") + name),
                                   "--split-blank-lines"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    json model = {{"model_type", "jetmoe"}, {"vocab_size", 32}, {"hidden_size", 16}, {"num_hidden_layers", 2},
                  {"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"num_key_value_heads", 2},
                  {"kv_channels", 4}, {"intermediate_size", 16}, {"max_position_embeddings", 32},
                  {"torch_dtype", "float32"}};
    config_ = {{"model", model},
               {"data", {{"phases", {{{"name", "phase1"}, {"token_share", 0.75},
                                      {"sources", {{{"name", "news"}, {"path", "shards/news"}, {"weight", 3}},
                                                   {{"name", "fiction"}, {"path", "shards/fiction"}, {"weight", 1}}}}},
                                     {{"name", "phase2"}, {"token_share", 0.25},
                                      {"sources", {{{"name", "fiction"}, {"path", "shards/fiction"}}}}}}},
                         {"validation_fraction", 0.1}}},
               {"seq_len", 16}, {"batch_size", 2}, {"steps", 8},
               {"optimizer", {{"lr", 1e-2}}},
               {"eval", {{"interval", 4}, {"max_sequences", 4}}},
               {"checkpoint", {{"interval", 4}, {"keep_last", 2}}},
               {"output_dir", "run"}, {"threads", 2}, {"seed", 1}};
    write("train.json", config_.dump(2));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return (dir_ / name).string();
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<json> step_lines(const std::string& run) const {
    std::vector<json> lines;
    std::ifstream in(dir_ / run / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line);
      if (j.contains("loss")) lines.push_back(j);
    }
    return lines;
  }

  fs::path dir_;
  json config_;
};

TEST_F(TrainCliTest, TrainsResumesAndWritesALoadableCheckpoint) {
  const CliResult r = run_cli({"train", "--config", path("train.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "step 8/8")) << r.err;
  EXPECT_TRUE(contains(r.err, "tok/s")) << r.err;
  EXPECT_TRUE(contains(r.err, "eval at step 8")) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "run" / "plot.html"));
  EXPECT_TRUE(fs::exists(dir_ / "run" / "step-4"));  // keep_last 2: step-4 and step-8
  const CliResult forward = run_cli({"info", "-m", path("run/step-8")});
  EXPECT_EQ(forward.exit_code, 0) << forward.err;

  // Resume the step-4 checkpoint into another run directory: steps 5..8 must match exactly.
  const CliResult resumed = run_cli({"train", "--resume", path("run/step-4"), "--out", path("run2")});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const std::vector<json> a = step_lines("run"), b = step_lines("run2");
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(a[i + 4]["loss"], b[i]["loss"]) << "step " << i + 5;
    EXPECT_EQ(a[i + 4]["grad_norm"], b[i]["grad_norm"]) << "step " << i + 5;
    EXPECT_EQ(a[i + 4]["data"], b[i]["data"]) << "step " << i + 5;
  }
}

TEST_F(TrainCliTest, BadConfigsExitOneNamingTheField) {
  CliResult r = run_cli({"train", "--config", path("train.json"), "--set", "optimizer.beta1=fast"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "optimizer.beta1")) << r.err;
  r = run_cli({"train", "--config", path("train.json"), "--set", "seq_len=100"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "max_position_embeddings")) << r.err;
  r = run_cli({"train", "--config", path("missing.json")});
  EXPECT_EQ(r.exit_code, 1);
}

}  // namespace
}  // namespace jetmoe::e2e
