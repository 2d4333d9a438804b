// `jetmoe prepare` as a black box: shards a reader can open, exit codes and messages for bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "train/data_token_stream.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;

class PrepareCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jetmoe_prepare_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write("tokenizer.json", char_level_tokenizer_json());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return (dir_ / name).string();
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST_F(PrepareCliTest, WritesShardsWithEosBetweenDocuments) {
  write("in/a.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"c\"}\n");
  write("in/b.txt", "d e\n");
  const CliResult r = run_cli({"prepare", "--tokenizer", path("tokenizer.json"), "--input", path("in"), "--out",
                               path("out"), "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "3 documents, 12 tokens")) << r.out;
  EXPECT_TRUE(contains(r.err, "tokens/s")) << r.err;
  const TokenStream stream(path("out"));
  std::vector<int32_t> ids;
  stream.append(0, stream.size(), ids);
  // ▁ a b </s> ▁ c </s> ▁ d ▁ e </s>
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 4, 5, 2, 3, 6, 2, 3, 7, 3, 8, 2}));

  const CliResult again = run_cli({"prepare", "--tokenizer", path("tokenizer.json"), "--input", path("in"), "--out",
                                   path("out")});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(contains(again.err, "0 inputs tokenized (2 already done)")) << again.err;
}

TEST_F(PrepareCliTest, BadInputExitsWithAMessage) {
  write("bad.jsonl", "{\"text\": \"a\"}\nnot json\n");
  const CliResult r = run_cli({"prepare", "--tokenizer", path("tokenizer.json"), "--input", path("bad.jsonl"), "--out",
                               path("out")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "bad.jsonl:2: invalid JSON")) << r.err;

  const CliResult missing = run_cli({"prepare", "--tokenizer", path("tokenizer.json"), "--input", path("nope.txt"),
                                     "--out", path("out")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.err, "nope.txt: no such input file")) << missing.err;

  const CliResult usage = run_cli({"prepare", "--tokenizer", path("tokenizer.json"), "--out", path("out")});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_TRUE(contains(usage.err, "--input")) << usage.err;
  const CliResult zero = run_cli({"prepare", "--tokenizer", path("tokenizer.json"), "--input", path("bad.jsonl"),
                                  "--out", path("out"), "--shard-tokens", "0"});
  EXPECT_EQ(zero.exit_code, 2);
}

}  // namespace
}  // namespace jetmoe::e2e
