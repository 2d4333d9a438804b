// `jetmoe perplexity` as a black box, on a tiny random model with the Llama-2 tokenizer of the
// tokenizer test assets (tools/tokenizer/fetch_assets.sh). Its figures are checked against other
// commands: `tokenize` gives the ids, `forward --ids` the mean next-token loss of each window.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string tokenizer_asset() {
  const char* env = std::getenv("JETMOE_TOKENIZER_ASSETS");
  const std::string dir = env && *env ? env : std::string(JETMOE_SOURCE_DIR) + "/build/tokenizer-assets";
  const std::string path = dir + "/llama2/tokenizer.json";
  if (!fs::exists(path))
    throw std::runtime_error("missing tokenizer test asset " + path +
                             ": run tools/tokenizer/fetch_assets.sh (or set JETMOE_TOKENIZER_ASSETS)");
  return path;
}

const char* kText =
    "The quick brown fox jumps over the lazy dog. Perplexity is the exponential of the mean negative\n"
    "log-likelihood per token; a model that predicts the text well has a low one.\n";

class PerplexityCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("jetmoe_e2e_ppl_" + std::to_string(getpid()))).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ + "/config.json") << json{{"model_type", "jetmoe"},
                                                 {"vocab_size", 32000},
                                                 {"hidden_size", 16},
                                                 {"num_hidden_layers", 2},
                                                 {"num_local_experts", 4},
                                                 {"num_experts_per_tok", 2},
                                                 {"num_key_value_heads", 2},
                                                 {"kv_channels", 8},
                                                 {"intermediate_size", 16},
                                                 {"max_position_embeddings", 64},
                                                 {"initializer_range", 0.5}}
                                                    .dump();
    const CliResult r = run_cli({"init", "--config", dir_ + "/config.json", "--out", model(), "--dtype", "f32",
                                 "--seed", "5", "--tokenizer", tokenizer_asset()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ofstream(text_file()) << kText;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string model() { return dir_ + "/model"; }
  static std::string text_file() { return dir_ + "/text.txt"; }
  static std::string write_file(const std::string& name, const std::string& content) {
    std::ofstream(dir_ + "/" + name, std::ios::binary) << content;
    return dir_ + "/" + name;
  }

  static std::vector<int64_t> tokenize(const std::string& text) {
    const CliResult r = run_cli({"tokenize", "--tokenizer", model(), "-p", text});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out).get<std::vector<int64_t>>();
  }

  // Sum of next-token NLL over ids[begin, end) from `jetmoe forward` (its loss is the mean).
  static double forward_nll_sum(const std::vector<int64_t>& ids, size_t begin, size_t end) {
    std::string list;
    for (size_t i = begin; i < end; ++i) list += (list.empty() ? "" : ",") + std::to_string(ids[i]);
    const CliResult r = run_cli({"forward", "-m", model(), "--ids", list});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out)["loss"].get<double>() * double(end - begin - 1);
  }

  static json perplexity_json(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"perplexity", "-m", model(), "-f", text_file(), "-t", "2", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "perplexity: ")) << "progress goes to stderr: " << r.err;
    return json::parse(r.out);
  }

  static inline std::string dir_;
};

TEST_F(PerplexityCli, OneWindowEqualsTheForwardLoss) {
  const std::vector<int64_t> ids = tokenize(kText);
  ASSERT_GT(ids.size(), 20u);
  ASSERT_LE(ids.size(), 64u);
  const json r = perplexity_json({});
  EXPECT_EQ(r["tokens"].get<size_t>(), ids.size());
  EXPECT_EQ(r["windows"], 1);
  EXPECT_EQ(r["context"], 64);  // min(512, max_position_embeddings)
  EXPECT_EQ(r["tokens_scored"].get<size_t>(), ids.size() - 1);
  const double want = forward_nll_sum(ids, 0, ids.size()) / double(ids.size() - 1);
  EXPECT_NEAR(r["mean_nll"].get<double>(), want, 1e-5 * want);
  EXPECT_NEAR(r["perplexity"].get<double>(), std::exp(r["mean_nll"].get<double>()), 1e-9 * r["perplexity"].get<double>());
  EXPECT_GT(r["tokens_per_second"].get<double>(), 0.0);
}

TEST_F(PerplexityCli, DisjointWindowsAddUpTheWindowsForwardLosses) {
  const std::vector<int64_t> ids = tokenize(kText);
  const size_t context = 10;
  const json r = perplexity_json({"--ctx", std::to_string(context)});
  double want = 0.0;
  size_t scored = 0;
  for (size_t begin = 0; begin < ids.size(); begin += context) {
    const size_t end = std::min(begin + context, ids.size());
    if (end - begin < 2) continue;
    want += forward_nll_sum(ids, begin, end);
    scored += end - begin - 1;
  }
  EXPECT_EQ(r["tokens_scored"].get<size_t>(), scored);
  EXPECT_NEAR(r["nll_sum"].get<double>(), want, 1e-5 * want);
}

TEST_F(PerplexityCli, OverlappingWindowsScoreEveryTokenOnce) {
  const std::vector<int64_t> ids = tokenize(kText);
  const json r = perplexity_json({"--ctx", "12", "--stride", "5"});
  EXPECT_EQ(r["tokens_scored"].get<size_t>(), ids.size() - 1);
  EXPECT_EQ(r["stride"], 5);
  EXPECT_GT(r["tokens_evaluated"].get<size_t>(), ids.size());
}

TEST_F(PerplexityCli, AnF16CacheScoresWithinOnePercentOfF32) {
  // Windows of 10: every window's attention reads K/V rows back from the cache.
  const json f32 = perplexity_json({"--ctx", "10"});
  const json f16 = perplexity_json({"--ctx", "10", "--cache-type", "f16"});
  EXPECT_EQ(f32["cache_type"], "f32");
  EXPECT_EQ(f16["cache_type"], "f16");
  EXPECT_EQ(f16["tokens_scored"], f32["tokens_scored"]);
  // K and V rounded to f16 (relative error <= 2^-11) barely move the scores; 1% would take a
  // misread cache.
  const double want = f32["perplexity"].get<double>();
  EXPECT_NEAR(f16["perplexity"].get<double>(), want, 0.01 * want);

  const CliResult text = run_cli({"perplexity", "-m", model(), "-f", text_file(), "-t", "1", "-ctk", "f16"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "| f16 KV cache |")) << text.out;
}

TEST_F(PerplexityCli, AGgufFileScoresLikeItsDirectory) {
  const std::string gguf = dir_ + "/model-f32.gguf";
  const CliResult q = run_cli({"quantize", "-m", model(), "-o", gguf, "--type", "f32"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const json from_dir = perplexity_json({});
  const CliResult r = run_cli({"perplexity", "-m", gguf, "-f", text_file(), "-t", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json from_gguf = json::parse(r.out);
  EXPECT_EQ(from_gguf["tokens"], from_dir["tokens"]);  // the tokenizer travels in the file
  EXPECT_NEAR(from_gguf["mean_nll"].get<double>(), from_dir["mean_nll"].get<double>(), 1e-9);
}

TEST_F(PerplexityCli, TextOutputNamesTheFigures) {
  const CliResult r = run_cli({"perplexity", "-m", model(), "-f", text_file(), "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "perplexity ")) << r.out;
  EXPECT_TRUE(contains(r.out, "mean NLL")) << r.out;
  EXPECT_TRUE(contains(r.out, "tokens/s")) << r.out;
}

TEST_F(PerplexityCli, BadInputsFailWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::string empty = write_file("empty.txt", ""), one_token = write_file("one.txt", "a");
  const std::vector<Case> cases = {
      {{"-f", dir_ + "/missing.txt"}, 1, "missing.txt"},
      {{"-f", empty}, 1, "empty"},
      {{"-f", one_token, "--no-bos"}, 1, "at least 2"},
      {{"-f", text_file(), "--ctx", "65"}, 1, "max_position_embeddings"},
      {{"-f", text_file(), "--ctx", "8", "--stride", "9"}, 1, "--stride"},
      {{"-f", text_file(), "--ctx", "1"}, 2, "--ctx"},
      {{"-f", text_file(), "--stride", "0"}, 2, "--stride"},
      {{}, 2, "--file"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"perplexity", "-m", model()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.message << ": " << r.err;
    EXPECT_TRUE(contains(r.err, c.message)) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  const CliResult no_model = run_cli({"perplexity", "-m", dir_ + "/nope", "-f", text_file()});
  EXPECT_EQ(no_model.exit_code, 1);
  EXPECT_TRUE(contains(no_model.err, "nope")) << no_model.err;
  // A model directory without a tokenizer cannot read text.
  const std::string bare = dir_ + "/bare";
  fs::create_directories(bare);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(model() + "/" + f, bare + "/" + f);
  const CliResult no_tokenizer = run_cli({"perplexity", "-m", bare, "-f", text_file()});
  EXPECT_EQ(no_tokenizer.exit_code, 1);
  EXPECT_TRUE(contains(no_tokenizer.err, "tokenizer")) << no_tokenizer.err;
}

}  // namespace
}  // namespace jetmoe::e2e
