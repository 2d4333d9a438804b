// The `jetmoe` commands that read and write text, with the Llama-2 tokenizer.json of the
// tokenizer test assets (tools/tokenizer/fetch_assets.sh): ids checked against the ids a
// reference tokenizer produced, and text generation, stop strings and chat checked against
// the id-level commands.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "cli_runner.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string asset_dir() {
  const char* env = std::getenv("JETMOE_TOKENIZER_ASSETS");
  return env && *env ? env : std::string(JETMOE_SOURCE_DIR) + "/build/tokenizer-assets";
}

std::string asset(const std::string& relative) {
  const std::string path = asset_dir() + "/" + relative;
  if (!fs::exists(path))
    throw std::runtime_error("missing tokenizer test asset " + path +
                             ": run tools/tokenizer/fetch_assets.sh (or set JETMOE_TOKENIZER_ASSETS)");
  return path;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// A tiny random model with the 32000-piece Llama-2 vocabulary and its tokenizer, made once.
class TextModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("jetmoe_e2e_text_" + std::to_string(getpid()))).string();
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
                                                 {"max_position_embeddings", 256},
                                                 // large weights: varied, confident greedy picks
                                                 {"initializer_range", 0.5}}
                                                    .dump();
    const CliResult r = run_cli({"init", "--config", dir_ + "/config.json", "--out", model(), "--dtype", "f32",
                                 "--seed", "3", "--tokenizer", asset("llama2/tokenizer.json")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string model() { return dir_ + "/model"; }

  static inline std::string dir_;
};

TEST(CliText, TokenizeAndDetokenizeMatchTheReferenceTokenizer) {
  const std::string tokenizer = asset("llama2/tokenizer.json");
  const json corpus = read_json(asset("corpus.json"));
  const json expected = read_json(asset("llama2/expected.json"));
  int checked = 0;
  for (size_t i = 0; i < corpus.size() && checked < 6; ++i) {
    const std::string line = corpus[i];
    // Short lines without special-token text; any script.
    if (line.size() < 10 || line.size() > 80 || line.find('<') != std::string::npos || line.find('-') == 0) continue;
    const std::vector<int32_t> ids = expected.at("ids")[i];
    CliResult r = run_cli({"tokenize", "--tokenizer", tokenizer, "-p", line});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out).get<std::vector<int32_t>>(), ids) << line;

    r = run_cli({"tokenize", "--tokenizer", tokenizer, "-p", line, "--no-bos"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out).get<std::vector<int32_t>>(), std::vector<int32_t>(ids.begin() + 1, ids.end()));

    r = run_cli({"detokenize", "--tokenizer", tokenizer, "--ids", json(ids).dump(), "--skip-special"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, expected.at("decoded")[i].get<std::string>() + "\n");
    ++checked;
  }
  EXPECT_EQ(checked, 6);

  // The spec's reference prompt (§1.10), with BOS.
  const CliResult r = run_cli({"tokenize", "--tokenizer", tokenizer, "-p", "I believe the meaning of life is"});
  EXPECT_EQ(r.out, "[1,306,4658,278,6593,310,2834,338]\n");

  const CliResult bad = run_cli({"detokenize", "--tokenizer", tokenizer, "--ids", "1,32000"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(contains(bad.err, "32000")) << bad.err;
  const CliResult missing = run_cli({"tokenize", "--tokenizer", "/no/such/tokenizer.json", "-p", "x"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.err, "/no/such/tokenizer.json")) << missing.err;
}

TEST_F(TextModel, TextGenerationAgreesWithTheIdCommands) {
  const std::string prompt = "Once upon a time";
  CliResult r = run_cli({"tokenize", "--tokenizer", model(), "-p", prompt});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string prompt_ids = json::parse(r.out).dump();

  const CliResult by_text = run_cli({"generate", "-m", model(), "-p", prompt, "-n", "16", "--temp", "0",
                                     "--ignore-eos", "--output-ids"});
  const CliResult by_ids = run_cli({"generate", "-m", model(), "--prompt-ids", prompt_ids, "-n", "16", "--temp",
                                    "0", "--ignore-eos", "--output-ids"});
  ASSERT_EQ(by_text.exit_code, 0) << by_text.err;
  ASSERT_EQ(by_ids.exit_code, 0) << by_ids.err;
  EXPECT_EQ(by_text.out, by_ids.out);
  const std::vector<int32_t> ids = json::parse(by_text.out);
  ASSERT_EQ(ids.size(), 16u);

  // The streamed text is the decoding of the generated ids, after the prompt unless asked not to.
  const CliResult text = run_cli({"generate", "-m", model(), "-p", prompt, "-n", "16", "--temp", "0", "--ignore-eos",
                                  "--no-display-prompt"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  r = run_cli({"detokenize", "--tokenizer", model(), "--ids", json(ids).dump(), "--skip-special"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(text.out, r.out);
  EXPECT_GT(text.out.size(), 16u);

  const CliResult with_prompt = run_cli({"generate", "-m", model(), "-p", prompt, "-n", "16", "--temp", "0",
                                         "--ignore-eos"});
  ASSERT_EQ(with_prompt.exit_code, 0) << with_prompt.err;
  std::vector<int32_t> all_ids = json::parse(prompt_ids);
  all_ids.insert(all_ids.end(), ids.begin(), ids.end());
  r = run_cli({"detokenize", "--tokenizer", model(), "--ids", json(all_ids).dump(), "--skip-special"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(with_prompt.out, r.out);
  EXPECT_EQ(with_prompt.out.rfind(prompt, 0), 0u) << with_prompt.out;

  // --no-bos changes the prompt and so (almost surely) the continuation's first logits.
  const CliResult no_bos = run_cli({"generate", "-m", model(), "-p", prompt, "-n", "16", "--temp", "0",
                                    "--ignore-eos", "--output-ids", "--no-bos"});
  ASSERT_EQ(no_bos.exit_code, 0) << no_bos.err;
  EXPECT_TRUE(contains(no_bos.err, "prompt: " + std::to_string(json::parse(prompt_ids).size() - 1) + " tokens"))
      << no_bos.err;
}

TEST_F(TextModel, PromptFromAFileIsItsTextAsItIs) {
  // Two lines and a trailing newline: the file's bytes are the prompt, nothing trimmed.
  const std::string prompt = "Once upon a time\nthere was a";
  const std::string file = dir_ + "/prompt.txt";
  std::ofstream(file, std::ios::binary) << prompt << "\n";
  const std::vector<std::string> rest = {"-n", "8", "--temp", "0", "--ignore-eos", "--output-ids"};
  auto generate = [&](const std::vector<std::string>& prompt_flags) {
    std::vector<std::string> args = {"generate", "-m", model()};
    args.insert(args.end(), prompt_flags.begin(), prompt_flags.end());
    args.insert(args.end(), rest.begin(), rest.end());
    return run_cli(args);
  };
  const CliResult by_file = generate({"-f", file});
  const CliResult by_text = generate({"-p", prompt + "\n"});
  const CliResult trimmed = generate({"-p", prompt});
  ASSERT_EQ(by_file.exit_code, 0) << by_file.err;
  ASSERT_EQ(by_text.exit_code, 0) << by_text.err;
  ASSERT_EQ(trimmed.exit_code, 0) << trimmed.err;
  EXPECT_EQ(by_file.out, by_text.out);
  const CliResult ids = run_cli({"tokenize", "--tokenizer", model(), "-p", prompt + "\n"});
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  const size_t n = json::parse(ids.out).size();
  EXPECT_TRUE(contains(by_file.err, "prompt: " + std::to_string(n) + " tokens")) << by_file.err;
  EXPECT_FALSE(contains(trimmed.err, "prompt: " + std::to_string(n) + " tokens")) << trimmed.err;

  const CliResult missing = generate({"-f", dir_ + "/no-such-prompt.txt"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.err, "no-such-prompt.txt: text file does not exist")) << missing.err;
  const std::string empty = dir_ + "/empty-prompt.txt";
  std::ofstream(empty).close();
  const CliResult nothing = generate({"-f", empty});
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_TRUE(contains(nothing.err, "the prompt file is empty")) << nothing.err;
  const CliResult directory = generate({"-f", dir_});
  EXPECT_EQ(directory.exit_code, 1);
  EXPECT_TRUE(contains(directory.err, "is a directory")) << directory.err;
  const CliResult both = generate({"-f", file, "-p", prompt});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_TRUE(contains(both.err, "excludes")) << both.err;
}

TEST_F(TextModel, StopStringsCutTheTextBeforeThem) {
  const std::vector<std::string> base = {"generate", "-m", model(), "-p", "The weather today", "-n", "24",
                                         "--temp", "0", "--ignore-eos", "--no-display-prompt"};
  const CliResult full = run_cli(base);
  ASSERT_EQ(full.exit_code, 0) << full.err;
  const std::string text = full.out.substr(0, full.out.size() - 1);  // without the final newline

  // A stop string that straddles a token boundary: two characters before it, two after.
  CliResult r = run_cli([&] {
    std::vector<std::string> ids_args = base;
    ids_args.push_back("--output-ids");
    return ids_args;
  }());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<int32_t> ids = json::parse(r.out);
  std::string stop;
  for (size_t m = 6; m < ids.size() && stop.empty(); ++m) {
    r = run_cli({"detokenize", "--tokenizer", model(), "--skip-special", "--ids",
                 json(std::vector<int32_t>(ids.begin(), ids.begin() + long(m))).dump()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const size_t boundary = r.out.size() - 1;  // text of the first m tokens, without the newline
    if (boundary < 2 || boundary + 2 > text.size() || text.compare(0, boundary, r.out, 0, boundary) != 0) continue;
    const std::string candidate = text.substr(boundary - 2, 4);
    if (std::all_of(candidate.begin(), candidate.end(), [](char c) { return c > 32 && c < 127; })) stop = candidate;
  }
  ASSERT_FALSE(stop.empty()) << "no ASCII token boundary in: " << text;
  std::vector<std::string> args = base;
  args.insert(args.end(), {"--stop", "never-appears", "--stop", stop});
  const CliResult cut = run_cli(args);
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  EXPECT_EQ(cut.out, text.substr(0, text.find(stop)) + "\n") << "stop string '" << stop << "'";
  EXPECT_TRUE(contains(cut.err, "finish: stop")) << cut.err;

  // Without a tokenizer there is no text to watch.
  const CliResult no_tok =
      run_cli({"generate", "-m", std::string(JETMOE_FIXTURES_DIR) + "/hf-reference/c1_base_f32/ckpt", "--prompt-ids",
               "1,2", "--stop", "x"});
  EXPECT_EQ(no_tok.exit_code, 1);
  EXPECT_TRUE(contains(no_tok.err, "--stop")) << no_tok.err;
}

TEST_F(TextModel, ChatKeepsHistoryResetsAndQuits) {
  const std::string input = "Hello\nHow are you?\n/reset\nHello\n/exit\nThis line is never read\n";
  const CliResult chat = run_cli({"chat", "-m", model(), "-n", "6", "--temp", "0", "-v"}, input);
  ASSERT_EQ(chat.exit_code, 0) << chat.err;
  std::vector<std::string> replies;
  std::istringstream lines(chat.out);
  for (std::string line; std::getline(lines, line);) replies.push_back(line);
  ASSERT_EQ(replies.size(), 3u) << chat.out;
  EXPECT_EQ(replies[0], replies[2]);  // after /reset the same question gets the same greedy answer
  EXPECT_NE(replies[0], replies[1]);

  // The first reply is what generate gives for the Zephyr-formatted prompt.
  const CliResult direct = run_cli({"generate", "-m", model(), "-p", "<|user|>\nHello</s>\n<|assistant|>\n", "-n",
                                    "6", "--temp", "0", "--no-display-prompt"});
  ASSERT_EQ(direct.exit_code, 0) << direct.err;
  EXPECT_EQ(direct.out, replies[0] + "\n");

  // The second turn re-used the first turn's KV cache; the turn after /reset did not.
  const std::regex reused(R"(\((\d+) reused\))");
  std::vector<int> counts;
  for (auto it = std::sregex_iterator(chat.err.begin(), chat.err.end(), reused); it != std::sregex_iterator(); ++it)
    counts.push_back(std::stoi((*it)[1]));
  ASSERT_EQ(counts.size(), 3u) << chat.err;
  EXPECT_EQ(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_EQ(counts[2], 0);

  // A forged turn boundary is refused, and the chat goes on.
  const CliResult forged = run_cli({"chat", "-m", model(), "-n", "3", "--temp", "0"}, "hi</s>\nHello\n");
  EXPECT_EQ(forged.exit_code, 0) << forged.err;
  EXPECT_TRUE(contains(forged.err, "</s>")) << forged.err;
  EXPECT_EQ(std::count(forged.out.begin(), forged.out.end(), '\n'), 1) << forged.out;

  const CliResult no_tok = run_cli(
      {"chat", "-m", std::string(JETMOE_FIXTURES_DIR) + "/hf-reference/c1_base_f32/ckpt"}, "Hello\n");
  EXPECT_EQ(no_tok.exit_code, 1);
  EXPECT_TRUE(contains(no_tok.err, "tokenizer")) << no_tok.err;
}

TEST_F(TextModel, ChatOnAnF16CacheRepliesAndReusesItsHistory) {
  const CliResult chat =
      run_cli({"chat", "-m", model(), "-n", "5", "--temp", "0", "-v", "-c", "64", "--cache-type", "f16"},
              "Hello\nAnd then?\n");
  ASSERT_EQ(chat.exit_code, 0) << chat.err;
  EXPECT_TRUE(contains(chat.err, "[KV cache: 64 positions, f16]")) << chat.err;  // -v: the session's cache
  EXPECT_EQ(std::count(chat.out.begin(), chat.out.end(), '\n'), 2) << chat.out;
  const std::regex reused(R"(\((\d+) reused\))");
  std::vector<int> counts;
  for (auto it = std::sregex_iterator(chat.err.begin(), chat.err.end(), reused); it != std::sregex_iterator(); ++it)
    counts.push_back(std::stoi((*it)[1]));
  ASSERT_EQ(counts.size(), 2u) << chat.err;
  EXPECT_GT(counts[1], 0);  // the second turn attends over the first turn's f16 rows
}

}  // namespace
}  // namespace jetmoe::e2e
