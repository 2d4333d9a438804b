// `jetmoe bench` as a black box on a tiny random model: the tables and the JSON carry every
// requested test with positive speeds, bounds and fractions; the training-step test (--train-batch)
// also carries finite losses and rejects a sequence longer than the model's positions; --depth names
// its tests and counts against the positions; lists of lengths and depths run every combination;
// --cache-type f16 halves the K/V bytes of the tg bound.
// (What the speeds are is not tested: benchmarks are measured, never asserted.)
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class BenchCli : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jetmoe_bench_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "config.json") << json{{"model_type", "jetmoe"},        {"vocab_size", 300},
                                                {"hidden_size", 32},             {"num_hidden_layers", 2},
                                                {"num_local_experts", 4},        {"num_experts_per_tok", 2},
                                                {"num_key_value_heads", 2},      {"kv_channels", 8},
                                                {"intermediate_size", 24},       {"max_position_embeddings", 64},
                                                {"tie_word_embeddings", true}}
                                                   .dump();
    model_ = (dir_ / "model").string();
    const CliResult r =
        run_cli({"init", "--config", (dir_ / "config.json").string(), "--out", model_, "--dtype", "bf16"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string model_;
};

TEST_F(BenchCli, JsonHasEveryTestWithPositiveSpeedsAndBounds) {
  const CliResult r = run_cli({"bench", "-m", model_, "-t", "1,2", "-p", "8", "-n", "4", "-r", "2", "-a", "f32,bf16",
                               "--bandwidth-mib", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j.at("machine").size(), 2u);
  for (const json& m : j.at("machine")) {
    EXPECT_GT(m.at("read_bytes_per_s").get<double>(), 0);
    EXPECT_GT(m.at("fma_flops").get<double>(), 0);
  }
  ASSERT_EQ(j.at("results").size(), 8u);  // 2 thread counts x 2 precisions x (pp, tg)
  int pp = 0, tg = 0;
  for (const json& row : j.at("results")) {
    const std::string test = row.at("test");
    pp += test == "pp8";
    tg += test == "tg4";
    EXPECT_EQ(row.at("tokens_per_s").size(), 2u);
    EXPECT_GT(row.at("mean_tokens_per_s").get<double>(), 0);
    EXPECT_GT(row.at("bound_tokens_per_s").get<double>(), 0);
    EXPECT_GT(row.at("fraction_of_bound").get<double>(), 0);
    EXPECT_EQ(row.at("weight_dtype"), "BF16");
  }
  EXPECT_EQ(pp, 4);
  EXPECT_EQ(tg, 4);
}

TEST_F(BenchCli, MarkdownTablesAndBadFlags) {
  CliResult r = run_cli({"bench", "-m", model_, "-t", "1", "-p", "4", "-n", "0", "-r", "1", "--bandwidth-mib", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| threads | read GB/s |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| pp4 |"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("| tg"), std::string::npos) << r.out;  // -n 0 skips generation

  r = run_cli({"bench", "-m", model_, "-a", "f16"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_cli({"bench", "-m", model_, "-p", "100"});  // beyond max_position_embeddings 64
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("max_position_embeddings"), std::string::npos) << r.err;
  r = run_cli({"bench", "-m", (dir_ / "missing").string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  r = run_cli({"bench", "-m", model_, "-p", "0", "-n", "0"});  // no test left to run
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("nothing to measure"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(BenchCli, DepthStartsEveryTestAfterCachedPositions) {
  const CliResult r = run_cli({"bench", "-m", model_, "-t", "1", "-p", "4", "-n", "3", "-d", "40", "-r", "2",
                               "--bandwidth-mib", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j.at("results").size(), 2u);
  EXPECT_EQ(j.at("results")[0].at("test"), "pp4 @ d40");
  EXPECT_EQ(j.at("results")[1].at("test"), "tg3 @ d40");
  for (const json& row : j.at("results")) {
    EXPECT_EQ(row.at("depth"), 40);
    EXPECT_GT(row.at("mean_tokens_per_s").get<double>(), 0);
    EXPECT_GT(row.at("fraction_of_bound").get<double>(), 0);
  }
  const CliResult md = run_cli({"bench", "-m", model_, "-t", "1", "-p", "0", "-n", "2", "-d", "5", "-r", "1",
                                "--bandwidth-mib", "8"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_TRUE(contains(md.out, "| tg2 @ d5 |")) << md.out;

  // The depth counts against the model's positions; a negative one is a usage error.
  CliResult bad = run_cli({"bench", "-m", model_, "-p", "8", "-n", "0", "-d", "60"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_TRUE(contains(bad.err, "68 tokens (with the depth)")) << bad.err;
  EXPECT_TRUE(contains(bad.err, "max_position_embeddings 64")) << bad.err;
  bad = run_cli({"bench", "-m", model_, "-d", "-1"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

TEST_F(BenchCli, ListsOfLengthsAndDepthsRunEveryCombination) {
  // As llama-bench: one pp test per -p entry, one tg test per -n entry (zeros skipped), all of
  // them after each -d entry, in that order.
  const CliResult r = run_cli({"bench", "-m", model_, "-t", "1", "-p", "4,8", "-n", "3,0,2", "-d", "0,20", "-r", "1",
                               "--bandwidth-mib", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json results = json::parse(r.out).at("results");
  const std::vector<std::string> want = {"pp4",       "pp8",       "tg3",       "tg2",
                                        "pp4 @ d20", "pp8 @ d20", "tg3 @ d20", "tg2 @ d20"};
  ASSERT_EQ(results.size(), want.size()) << r.out;
  for (size_t i = 0; i < want.size(); ++i) {
    const json& row = results[i];
    EXPECT_EQ(row.at("test"), want[i]);
    EXPECT_EQ(row.at("depth"), i < 4 ? 0 : 20) << want[i];
    EXPECT_EQ(row.at("tokens"), std::stoi(want[i].substr(2))) << want[i];
    EXPECT_GT(row.at("mean_tokens_per_s").get<double>(), 0) << want[i];
  }
  // The bounds of the tests at depth 20 add the cached positions' cost; lengths change nothing.
  EXPECT_EQ(results[0].at("flops_per_token"), results[1].at("flops_per_token"));
  EXPECT_GT(results[4].at("flops_per_token").get<double>(), results[0].at("flops_per_token").get<double>());
  EXPECT_EQ(results[2].at("bytes_per_token"), results[3].at("bytes_per_token"));
  EXPECT_GT(results[6].at("bytes_per_token").get<double>(), results[2].at("bytes_per_token").get<double>());

  // The longest entries count against the model's positions together: 8 + 60 > 64.
  CliResult bad = run_cli({"bench", "-m", model_, "-p", "2,8", "-n", "0", "-d", "0,60"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_TRUE(contains(bad.err, "68 tokens (with the depth)")) << bad.err;
  for (const char* flag : {"-p", "-n", "-d"}) {
    for (const char* list : {"4,-1", "4,x", "4,1e9"}) {
      bad = run_cli({"bench", "-m", model_, flag, list});
      EXPECT_EQ(bad.exit_code, 2) << flag << " " << list << ": " << bad.err;
      EXPECT_EQ(bad.out, "") << flag << " " << list;
    }
  }
  bad = run_cli({"bench", "-m", model_, "-p", "0,0", "-n", "0"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_TRUE(contains(bad.err, "nothing to measure")) << bad.err;
}

TEST_F(BenchCli, AnF16CacheHalvesTheKvBytesOfTheTgBound) {
  const CliResult r = run_cli({"bench", "-m", model_, "-t", "1", "-p", "4", "-n", "3", "-d", "40", "-r", "1",
                               "--cache-type", "f32,f16", "--bandwidth-mib", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j.at("results").size(), 4u);  // (pp, tg) per cache type
  std::map<std::string, json> rows;
  for (const json& row : j.at("results"))
    rows[row.at("cache_type").get<std::string>() + " " + row.at("test").get<std::string>()] = row;
  ASSERT_EQ(rows.size(), 4u) << j.dump();
  const json& tg32 = rows.at("f32 tg3 @ d40");
  const json& tg16 = rows.at("f16 tg3 @ d40");
  // A cached position holds 2 layers x (K, V) x 2 heads x 8 values: 256 bytes in f32, 128 in f16.
  // The weight bytes are the same in both rows, so the difference is the 40 positions' f16 half.
  EXPECT_DOUBLE_EQ(tg32.at("bytes_per_token").get<double>() - tg16.at("bytes_per_token").get<double>(), 40.0 * 128);
  EXPECT_GT(tg16.at("bytes_per_token").get<double>(), 40.0 * 128);  // plus the weights
  // pp's bound counts attention products, which the cache type does not change.
  EXPECT_DOUBLE_EQ(rows.at("f32 pp4 @ d40").at("flops_per_token").get<double>(),
                   rows.at("f16 pp4 @ d40").at("flops_per_token").get<double>());
  for (const auto& [name, row] : rows) EXPECT_GT(row.at("mean_tokens_per_s").get<double>(), 0) << name;

  const CliResult md = run_cli({"bench", "-m", model_, "-t", "1", "-p", "0", "-n", "2", "-r", "1", "-ctk", "f16",
                                "--bandwidth-mib", "8"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_TRUE(contains(md.out, "| act | cache | test |")) << md.out;
  EXPECT_TRUE(contains(md.out, "| f32 | f16 | tg2 |")) << md.out;
}

TEST_F(BenchCli, TrainRowsPerPrecision) {
  const CliResult r = run_cli({"bench", "-m", model_, "-t", "2", "-p", "0", "-n", "0", "-r", "2", "-a", "f32,bf16",
                               "--train-batch", "3", "--train-len", "10", "--bandwidth-mib", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j.at("results").size(), 2u);
  std::vector<std::string> precisions;
  for (const json& row : j.at("results")) {
    EXPECT_EQ(row.at("test"), "train3x10");
    EXPECT_EQ(row.at("tokens"), 30);
    EXPECT_EQ(row.at("tokens_per_s").size(), 2u);
    EXPECT_GT(row.at("mean_tokens_per_s").get<double>(), 0);
    EXPECT_GT(row.at("bound_tokens_per_s").get<double>(), 0);
    EXPECT_GT(row.at("fraction_of_fp32_peak").get<double>(), 0);
    // Random ids over 300 tokens: the loss starts near ln(300) = 5.7 (plus the small aux terms).
    for (const char* key : {"loss_first", "loss_last"}) {
      EXPECT_TRUE(std::isfinite(row.at(key).get<double>())) << key;
      EXPECT_NEAR(row.at(key).get<double>(), std::log(300.0), 1.5) << key;
    }
    precisions.push_back(row.at("activations"));
  }
  EXPECT_EQ(precisions, (std::vector<std::string>{"f32", "bf16"}));

  const CliResult md = run_cli({"bench", "-m", model_, "-t", "1", "-p", "0", "-n", "0", "-r", "1",
                                "--train-batch", "1", "--train-len", "4", "--bandwidth-mib", "8"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_TRUE(contains(md.out, "train1x4")) << md.out;
}

TEST_F(BenchCli, MicroBatchesMakeOneStep) {
  const CliResult r = run_cli({"bench", "-m", model_, "-t", "1", "-p", "0", "-n", "0", "-r", "1", "--train-batch",
                               "2", "--train-len", "4", "--train-accum", "3", "--bandwidth-mib", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j.at("results").size(), 1u);
  EXPECT_EQ(j.at("results")[0].at("test"), "train2x4x3");
  EXPECT_EQ(j.at("results")[0].at("tokens"), 24);
  const CliResult bad = run_cli({"bench", "-m", model_, "--train-batch", "1", "--train-accum", "0"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_TRUE(contains(bad.err, "--train-accum")) << bad.err;
}

TEST_F(BenchCli, RejectsASequenceBeyondTheModelsPositions) {
  const CliResult r = run_cli({"bench", "-m", model_, "-t", "1", "-p", "0", "-n", "0", "-r", "1",
                               "--train-batch", "1", "--train-len", "65", "--bandwidth-mib", "8"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "max_position_embeddings")) << r.err;
}

}  // namespace
}  // namespace jetmoe::e2e
