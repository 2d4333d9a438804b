// The `jetmoe` binary as a black box: help and usage errors, exit codes, and the numbers its
// commands print checked against the HF reference fixture and against independent arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "formats/npy.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kCase = std::string(JETMOE_FIXTURES_DIR) + "/hf-reference/c1_base_f32";
const std::string kCkpt = kCase + "/ckpt";

// Row `row` of an [N, T] integer .npy (or the whole of a [T] one) as "1,2,3".
std::string npy_row_csv(const std::string& path, int64_t row) {
  const NpyArray a = read_npy(path);
  const int64_t n = a.shape.back();
  std::string out;
  for (int64_t i = 0; i < n; ++i) {
    if (i) out += ',';
    out += std::to_string(int64_t(a.values[size_t(row * n + i)]));
  }
  return out;
}

std::vector<int64_t> npy_row(const std::string& path, int64_t row) {
  const NpyArray a = read_npy(path);
  const int64_t n = a.shape.back();
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(int64_t(a.values[size_t(row * n + i)]));
  return out;
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("jetmoe_e2e_" + std::to_string(getpid()) + "_" + std::to_string(next_++))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int next_ = 0;
  fs::path path_;
};

// --- help and usage errors ---------------------------------------------------------------

TEST(Cli, HelpListsEveryCommandAndEachCommandExplainsItsFlags) {
  const CliResult help = run_cli({"help"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  const std::map<std::string, std::vector<std::string>> flags = {
      {"generate", {"--prompt", "--prompt-ids", "--max-tokens", "--temp", "--top-k", "--top-p", "--min-p",
                    "--repeat-penalty", "--seed", "--output-ids", "--stop", "--threads", "--ctx-size", "--cache-type",
                    "--no-bos", "--ignore-eos"}},
      {"chat", {"--model", "--system", "--temp", "--cache-type"}},
      {"serve", {"--cache-type", "--parallel"}},
      {"perplexity", {"--cache-type", "--ctx"}},
      {"bench", {"--cache-type", "--depth"}},
      {"forward", {"--model", "--ids", "--logits-out"}},
      {"tokenize", {"--tokenizer", "--prompt", "--no-bos"}},
      {"detokenize", {"--tokenizer", "--ids"}},
      {"info", {"--model", "--json"}},
      {"init", {"--config", "--out", "--seed", "--dtype", "--tokenizer", "--shard-size", "--force"}},
  };
  for (const auto& [command, names] : flags) {
    EXPECT_TRUE(contains(help.out, command)) << command;
    for (const std::vector<std::string>& args : {std::vector<std::string>{command, "--help"},
                                                 std::vector<std::string>{"help", command}}) {
      const CliResult r = run_cli(args);
      EXPECT_EQ(r.exit_code, 0) << command << ": " << r.err;
      for (const std::string& flag : names) EXPECT_TRUE(contains(r.out, flag)) << command << " help lacks " << flag;
    }
  }
}

TEST(Cli, UsageErrorsExitWith2AndSayWhy) {
  CliResult r = run_cli({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "subcommand")) << r.err;

  r = run_cli({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "frobnicate")) << r.err;

  r = run_cli({"forward", "-m", kCkpt, "--ids", "1,2", "--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--bogus")) << r.err;

  r = run_cli({"forward", "-m", kCkpt, "--ids", "1,2,x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "'x'")) << r.err;

  r = run_cli({"generate", "-m", kCkpt, "--prompt-ids", "1,2", "--temp", "-1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "temperature")) << r.err;

  r = run_cli({"generate", "-m", kCkpt, "--prompt-ids", "1,2", "--top-p", "1.5"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "top_p")) << r.err;

  r = run_cli({"generate", "-m", kCkpt, "--prompt-ids", "1,2", "--top-k", "many"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "many")) << r.err;

  r = run_cli({"generate", "-m", kCkpt});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--prompt-ids")) << r.err;

  r = run_cli({"init", "--config", kCkpt + "/config.json", "--out", "/tmp/unused", "--dtype", "f64"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "f64")) << r.err;

  r = run_cli({"help", "nonsense"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST(Cli, FailuresExitWith1AndNameTheCulprit) {
  CliResult r = run_cli({"forward", "-m", "/no/such/model", "--ids", "1,2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "error:")) << r.err;
  EXPECT_TRUE(contains(r.err, "/no/such/model")) << r.err;

  r = run_cli({"info", "-m", "/no/such/model"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "/no/such/model")) << r.err;

  r = run_cli({"forward", "-m", kCkpt, "--ids", "1,512"});  // vocab is 512
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "512")) << r.err;
  EXPECT_TRUE(contains(r.err, "vocabulary")) << r.err;

  r = run_cli({"generate", "-m", kCkpt, "--prompt-ids", "1,9999", "-n", "2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "9999")) << r.err;

  // The fixture checkpoint has no tokenizer: text prompts cannot work, and the error says what does.
  r = run_cli({"generate", "-m", kCkpt, "-p", "Hello"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "--prompt-ids")) << r.err;
}

TEST(Cli, AnUnknownCacheTypeIsAUsageErrorNamingTheFlagAndTheTypes) {
  const std::vector<std::vector<std::string>> commands = {{"generate", "-m", kCkpt, "--prompt-ids", "1,2"},
                                                          {"chat", "-m", kCkpt},
                                                          {"perplexity", "-m", kCkpt, "-f", "unused.txt"},
                                                          {"bench", "-m", kCkpt},
                                                          {"serve", "-m", kCkpt, "--port", "0"}};
  for (const std::vector<std::string>& command : commands) {
    for (const std::vector<std::string>& flag :
         {std::vector<std::string>{"--cache-type", "q8"}, std::vector<std::string>{"-ctk", "q8"}}) {
      std::vector<std::string> args = command;
      args.insert(args.end(), flag.begin(), flag.end());
      const CliResult r = run_cli(args);
      EXPECT_EQ(r.exit_code, 2) << command[0] << " " << flag[0] << ": " << r.err;
      for (const char* word : {"--cache-type", "'q8'", "f32", "f16"})
        EXPECT_TRUE(contains(r.err, word)) << command[0] << " " << flag[0] << " lacks " << word << ": " << r.err;
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
  }
  // One bad entry spoils bench's list.
  const CliResult list = run_cli({"bench", "-m", kCkpt, "--cache-type", "f32,bf16"});
  EXPECT_EQ(list.exit_code, 2) << list.err;
  EXPECT_TRUE(contains(list.err, "'bf16'")) << list.err;
}

// --- numbers against the HF reference ----------------------------------------------------

TEST(Cli, ForwardMatchesTheReferenceLogitsAndLoss) {
  TempDir tmp;
  const std::string ids = npy_row_csv(kCase + "/input_ids.npy", 0);
  const CliResult r = run_cli({"forward", "-m", kCkpt, "--ids", ids, "--logits-out", tmp / "logits.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const NpyArray got = read_npy(tmp / "logits.npy");
  const NpyArray want = read_npy(kCase + "/logits.npy");  // [B, T, V]
  const int64_t T = want.shape.at(1), V = want.shape.at(2);
  ASSERT_EQ(got.shape, (Shape{T, V}));
  double worst = 0;
  for (int64_t i = 0; i < T * V; ++i) worst = std::max(worst, std::fabs(got.values[size_t(i)] - want.values[size_t(i)]));
  EXPECT_LE(worst, 1e-4);  // the fixture's fp32 tolerance

  // Mean next-token cross-entropy, computed here from the reference logits.
  const std::vector<int64_t> tokens = npy_row(kCase + "/input_ids.npy", 0);
  double nll = 0;
  for (int64_t t = 0; t + 1 < T; ++t) {
    const double* row = want.values.data() + t * V;
    const double max = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - max);
    nll += max + std::log(sum) - row[tokens[size_t(t + 1)]];
  }
  const json out = json::parse(r.out);
  EXPECT_NEAR(out.at("loss").get<double>(), nll / double(T - 1), 1e-5);
  EXPECT_EQ(out.at("n_tokens"), T);
  const double* last = want.values.data() + (T - 1) * V;
  EXPECT_EQ(out.at("argmax"), std::max_element(last, last + V) - last);

  const CliResult single = run_cli({"forward", "-m", kCkpt, "--ids", "1"});
  ASSERT_EQ(single.exit_code, 0) << single.err;
  EXPECT_TRUE(json::parse(single.out).at("loss").is_null());
}

TEST(Cli, GreedyGenerationMatchesTheReferenceTokens) {
  for (int64_t row = 0; row < 2; ++row) {
    const std::vector<int64_t> want = npy_row(kCase + "/gen_tokens.npy", row);
    const CliResult r = run_cli({"generate", "-m", kCkpt, "--prompt-ids", npy_row_csv(kCase + "/input_ids.npy", row),
                                 "-n", std::to_string(want.size()), "--temp", "0", "--ignore-eos", "--output-ids"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out).get<std::vector<int64_t>>(), want) << "row " << row;
    EXPECT_TRUE(contains(r.err, "tokens/s")) << r.err;  // timings go to stderr
  }
}

TEST(Cli, AnF16CacheGeneratesTheRequestedTokens) {
  // Rounding K and V to f16 may change a greedy pick, so only the count is asserted; the timing
  // line names the type of the cache the session really made.
  const std::string prompt = npy_row_csv(kCase + "/input_ids.npy", 0);
  for (const std::vector<std::string>& flag : {std::vector<std::string>{"--cache-type", "f16"},
                                               std::vector<std::string>{"-ctk", "f16"},
                                               std::vector<std::string>{"--cache-type=F16"}}) {
    std::vector<std::string> args = {"generate", "-m", kCkpt, "--prompt-ids", prompt, "-n", "7", "--temp", "0",
                                     "--ignore-eos", "--output-ids"};
    args.insert(args.end(), flag.begin(), flag.end());
    const CliResult r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << flag[0] << ": " << r.err;
    EXPECT_EQ(json::parse(r.out).size(), 7u) << r.out;
    EXPECT_TRUE(contains(r.err, "| KV cache f16")) << r.err;
  }
  const CliResult f32 = run_cli({"generate", "-m", kCkpt, "--prompt-ids", prompt, "-n", "2", "--output-ids"});
  ASSERT_EQ(f32.exit_code, 0) << f32.err;
  EXPECT_TRUE(contains(f32.err, "| KV cache f32")) << "f32 is the default: " << f32.err;
}

TEST(Cli, Bf16PrefillKeepsTheReferenceGreedyTokensOfTheBf16Case) {
  // The BF16-weight reference case: with --bf16-prefill its 12-token prompt runs on bf16 dot
  // products (tests/model/bf16_activations_test.cc bounds the logits); the greedy tokens, whose
  // top-1 margins exceed 2e-3, stay the float64 reference's.
  const std::string dir = std::string(JETMOE_FIXTURES_DIR) + "/ref/bf16";
  const std::vector<int64_t> want = npy_row(dir + "/gen_tokens.npy", 0);
  const CliResult r = run_cli({"generate", "-m", dir, "--prompt-ids", npy_row_csv(dir + "/input_ids.npy", 0), "-n",
                               std::to_string(want.size()), "--temp", "0", "--ignore-eos", "--output-ids",
                               "--bf16-prefill"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).get<std::vector<int64_t>>(), want);
}

// --- init -> info -> forward -> generate on a fresh tiny model ----------------------------

struct TinyModel {
  int64_t vocab = 320, d = 32, layers = 2, experts = 4, k = 2, heads = 2, head_dim = 8, ffn = 24;
  std::string config_json() const {
    return json{{"model_type", "jetmoe"},          {"vocab_size", vocab},      {"hidden_size", d},
                {"num_hidden_layers", layers},     {"num_local_experts", experts}, {"num_experts_per_tok", k},
                {"num_key_value_heads", heads},    {"kv_channels", head_dim},  {"intermediate_size", ffn},
                {"max_position_embeddings", 64},   {"initializer_range", 0.02}, {"tie_word_embeddings", true}}
        .dump();
  }
  // Spec §1.8 arithmetic, written out here independently of the library.
  int64_t total_params() const {
    const int64_t hd = heads * head_dim;
    const int64_t moa = 2 * experts * hd * d + 2 * hd * d + experts * d + d;
    const int64_t moe = experts * (2 * ffn * d + d * ffn) + experts * d + d;
    return layers * (moa + moe + 2 * d) + vocab * d + d;
  }
  int64_t active_layer_params() const {
    const int64_t hd = heads * head_dim;
    return k * 2 * hd * d + 2 * hd * d + experts * d + d + k * (2 * ffn * d + d * ffn) + experts * d + d + 2 * d;
  }
};

TEST(Cli, InitInfoForwardGenerateOnATinyModel) {
  TempDir tmp;
  const TinyModel tiny;
  std::ofstream(tmp / "config.json") << tiny.config_json();
  const std::string dir = tmp / "model";

  CliResult r = run_cli({"init", "--config", tmp / "config.json", "--out", dir, "--seed", "7", "--dtype", "f32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream generation(dir + "/generation_config.json");
  const json gen = json::parse(generation);
  EXPECT_EQ(gen.at("bos_token_id"), 1);
  EXPECT_EQ(gen.at("eos_token_id"), 2);
  EXPECT_EQ(gen.at("pad_token_id"), 2);

  r = run_cli({"init", "--config", tmp / "config.json", "--out", dir});
  EXPECT_EQ(r.exit_code, 1);  // not empty any more
  EXPECT_TRUE(contains(r.err, "--force")) << r.err;

  r = run_cli({"info", "-m", dir, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json info = json::parse(r.out);
  EXPECT_EQ(info.at("parameters").at("total"), tiny.total_params());
  const int64_t active_non_embedding = info.at("parameters").at("active_non_embedding");
  EXPECT_GE(active_non_embedding, tiny.layers * tiny.active_layer_params());
  EXPECT_LE(active_non_embedding, tiny.layers * tiny.active_layer_params() + tiny.d);  // final norm or not
  EXPECT_EQ(info.at("parameters").at("active"), active_non_embedding + tiny.vocab * tiny.d);
  EXPECT_EQ(info.at("weight_bytes").at("F32").at("bytes"), 4 * tiny.total_params());
  EXPECT_EQ(info.at("kv_cache_bytes_per_token"), tiny.layers * 2 * tiny.heads * tiny.head_dim * 4);
  EXPECT_EQ(info.at("kv_cache_bytes_per_token_f16"), tiny.layers * 2 * tiny.heads * tiny.head_dim * 2);
  EXPECT_EQ(info.at("config").at("hidden_size"), tiny.d);
  EXPECT_EQ(info.at("config").at("torch_dtype"), "float32");

  r = run_cli({"info", "-m", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, std::to_string(tiny.total_params()))) << r.out;
  EXPECT_TRUE(contains(r.out, "256 bytes (256 B, float32), 128 bytes (128 B, float16)")) << r.out;  // per token

  r = run_cli({"forward", "-m", dir, "--ids", "1,17,33,250"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json fwd = json::parse(r.out);
  const double loss = fwd.at("loss");
  // Small random weights give nearly uniform predictions: loss close to log(vocab).
  EXPECT_NEAR(loss, std::log(double(tiny.vocab)), 0.5);

  // Greedy generation's first token is the forward pass's last argmax.
  r = run_cli({"generate", "-m", dir, "--prompt-ids", "1,17,33,250", "-n", "1", "--temp", "0", "--output-ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), json::array({fwd.at("argmax")}));

  // Sampling is reproducible from the seed, and the seed matters.
  auto sample = [&](const std::string& seed) {
    const CliResult s = run_cli({"generate", "-m", dir, "--prompt-ids", "1,5", "-n", "12", "--temp", "1.5",
                                 "--top-k", "0", "--top-p", "1", "--min-p", "0", "--ignore-eos", "--seed", seed,
                                 "--output-ids"});
    EXPECT_EQ(s.exit_code, 0) << s.err;
    return json::parse(s.out).get<std::vector<int64_t>>();
  };
  const std::vector<int64_t> a = sample("11");
  EXPECT_EQ(a.size(), 12u);
  EXPECT_EQ(a, sample("11"));
  EXPECT_NE(a, sample("12"));

  // Without a tokenizer and without --output-ids, generate still prints ids, and says so.
  r = run_cli({"generate", "-m", dir, "--prompt-ids", "1,5", "-n", "3", "--temp", "0", "--ignore-eos"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).size(), 3u);
  EXPECT_TRUE(contains(r.err, "no tokenizer")) << r.err;

  // The context ends generation: 64 positions, a 60-token prompt -> 5 tokens at most.
  std::string long_prompt = "1";
  for (int i = 0; i < 59; ++i) long_prompt += ",7";
  r = run_cli({"generate", "-m", dir, "--prompt-ids", long_prompt, "-n", "-1", "--temp", "0", "--ignore-eos",
               "--output-ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).size(), 5u);
  EXPECT_TRUE(contains(r.err, "finish: length")) << r.err;

  // --force replaces the checkpoint; bf16 is recorded as torch_dtype.
  r = run_cli({"init", "--config", tmp / "config.json", "--out", dir, "--dtype", "bf16", "--force",
               "--shard-size", "20000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  r = run_cli({"info", "-m", dir, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("config").at("torch_dtype"), "bfloat16");
  EXPECT_EQ(json::parse(r.out).at("weight_bytes").at("BF16").at("bytes"), 2 * tiny.total_params());
}

}  // namespace
}  // namespace jetmoe::e2e
