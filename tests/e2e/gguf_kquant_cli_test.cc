// `jetmoe quantize --type q4_k|q5_k|q6_k|q4_k_m|q5_k_m` and k-quant GGUF models through the CLI, on a random model
// made by `jetmoe init` (Llama-2 tokenizer of the tokenizer test assets) with rows of 256 (stored
// as the k-quant) and of 128 (the Q8_0 fallback), and one expert per stack (no routing decision
// for 4-bit noise to flip): what quantize prints, what an independent reader (@huggingface/gguf,
// tools/gguf) sees, and that info, forward, generate and perplexity run on the files, their logits
// within 4- and 5-bit quantization error of the checkpoint's.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "formats/gguf_file_type.h"
#include "formats/npy.h"
#include "server_harness.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class GgufKQuantCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = server_detail::fresh_dir("jetmoe_e2e_gguf_kquant").string();
    std::ofstream(dir_ + "/config.json") << json{{"model_type", "jetmoe"},
                                                 {"vocab_size", 32000},
                                                 {"hidden_size", 256},
                                                 {"num_hidden_layers", 2},
                                                 {"num_local_experts", 1},
                                                 {"num_experts_per_tok", 1},
                                                 {"num_key_value_heads", 2},
                                                 {"kv_channels", 64},
                                                 {"intermediate_size", 128},
                                                 {"max_position_embeddings", 128},
                                                 {"rms_norm_eps", 1e-5},
                                                 {"tie_word_embeddings", false},
                                                 {"initializer_range", 0.02}}
                                                    .dump();
    const CliResult init =
        run_cli({"init", "--config", dir_ + "/config.json", "--out", model(), "--dtype", "f32", "--seed", "3",
                 "--tokenizer", tokenizer_asset_dir() + "/llama2/tokenizer.json"});
    ASSERT_EQ(init.exit_code, 0) << init.err;
    for (const char* type : {"q4_k", "q5_k", "q6_k", "q4_0", "q4_k_m", "Q5_K_M"}) {
      quantize_out_[type] = run_cli({"quantize", "-m", model(), "-o", gguf(type), "--type", type, "-t", "2"});
      ASSERT_EQ(quantize_out_[type].exit_code, 0) << quantize_out_[type].err;
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string model() { return dir_ + "/model"; }
  static std::string gguf(const std::string& type) { return dir_ + "/model-" + type + ".gguf"; }

  // Runs a node script of tools/gguf and parses its JSON output.
  static json node(const std::vector<std::string>& args) {
    EXPECT_TRUE(fs::exists(std::string(JETMOE_SOURCE_DIR) + "/tools/gguf/node_modules/@huggingface/gguf"))
        << "the @huggingface/gguf npm package is missing: run scripts/install-deps.sh";
    const std::string out = dir_ + "/node.json", err = dir_ + "/node.err";
    std::vector<std::string> command = {"node"};
    command.insert(command.end(), args.begin(), args.end());
    const pid_t pid = server_detail::spawn(command, out, err);
    EXPECT_EQ(server_detail::wait_exit(pid, std::chrono::seconds(60)), 0) << read_whole_file(err);
    return json::parse(read_whole_file(out));
  }

  static inline std::string dir_;
  static inline std::map<std::string, CliResult> quantize_out_;
};

TEST_F(GgufKQuantCli, QuantizePrintsWhatItConverted) {
  // In the _M files, the head and layer 1's kv_proj are Q6_K (layer 0 of 2 is not widened; the
  // MLP output rows of 128 are Q8_0 either way).
  auto line_of = [](const std::string& out, const std::string& tensor) {
    const size_t at = out.find("\n" + tensor + " ");
    return at == std::string::npos ? std::string() : out.substr(at + 1, out.find('\n', at + 1) - at - 1);
  };
  for (const std::string type : {"Q4_K_M", "Q5_K_M"}) {
    const std::string name = type == "Q4_K_M" ? "q4_k_m" : "Q5_K_M";
    const std::string& out = quantize_out_[name].out;
    const std::string widened = line_of(out, "blk.1.attn_kv.weight"), kept = line_of(out, "blk.0.attn_kv.weight");
    EXPECT_TRUE(contains(widened, "F32   Q6_K ") && contains(widened, type + ": more bits in this layer")) << out;
    EXPECT_TRUE(contains(kept, "F32   " + type.substr(0, 4) + " ")) << out;
    EXPECT_TRUE(contains(line_of(out, "output.weight"), "F32   Q6_K ")) << out;
    EXPECT_TRUE(contains(out, "wrote " + gguf(name) + " (" + type)) << out;
  }
  for (const std::string type : {"Q4_K", "Q5_K"}) {
    const std::string path = gguf(type == "Q4_K" ? "q4_k" : "q5_k");
    const std::string& out = quantize_out_[type == "Q4_K" ? "q4_k" : "q5_k"].out;
    for (const std::string& part :
         {std::string("blk.1.ffn_gate_up_exps.weight"), std::string("[1, 256, 256]"), "F32   " + type,
          std::string("blk.1.ffn_down_exps.weight"), std::string("rows not a multiple of 256"),
          std::string("output.weight"), std::string("output head"), std::string("total: 25 tensors"),
          "wrote " + path + " (" + type}) {
      EXPECT_TRUE(contains(out, part)) << "lacks '" << part << "':\n" << out;
    }
  }
}

// @huggingface/gguf reads our header, and its own tables agree with what we wrote: Q4_K / Q5_K /
// Q6_K are tensor types 12 / 13 / 14, the file types Q4_K_S / Q5_K_S / Q6_K are 14 / 16 / 18, and
// they are 4.5 / 5.5 / 6.5625 bits per weight in super-blocks of 256, which the tensors' extents in
// the data section (offset gaps, padded to 32) show.
TEST_F(GgufKQuantCli, AnIndependentReaderAgreesOnTypesAndSizes) {
  const json types = node({std::string(JETMOE_SOURCE_DIR) + "/tools/gguf/ggml_types.mjs"});
  ASSERT_EQ(types["tensor_types"]["Q4_K"], 12);
  ASSERT_EQ(types["tensor_types"]["Q5_K"], 13);
  ASSERT_EQ(types["tensor_types"]["Q6_K"], 14);
  struct Case {
    const char* file;
    std::string type, file_type, bits, blocks;
    uint64_t bytes_per_256;
    int tensors;  // the embedding, per layer attention inputs, kv_proj, MLP input (and the head in Q6_K)
  };
  // The _M files: those tensors less blk.1.attn_kv (Q6_K, as the head).
  for (const Case& c : {Case{"q4_k", "Q4_K", "Q4_K_S", "4.5", "8 blocks, each block has 32", 144, 7},
                        Case{"q5_k", "Q5_K", "Q5_K_S", "5.5", "8 blocks, each block has 32", 176, 7},
                        Case{"q6_k", "Q6_K", "Q6_K", "6.5625", "16 blocks, each block has 16", 210, 8},
                        Case{"q4_k_m", "Q4_K", "Q4_K_M", "4.5", "8 blocks, each block has 32", 144, 6},
                        Case{"Q5_K_M", "Q5_K", "Q5_K_M", "5.5", "8 blocks, each block has 32", 176, 6}}) {
    const std::string description = types["descriptions"][c.type];
    EXPECT_TRUE(contains(description, "Super-blocks with " + c.blocks + " weights")) << description;
    EXPECT_TRUE(contains(description, c.bits + " bits-per-weight")) << description;
    const json seen = node({std::string(JETMOE_SOURCE_DIR) + "/tools/gguf/read_gguf.mjs", gguf(c.file)});
    EXPECT_EQ(seen["metadata"]["general.file_type"]["value"], types["file_types"][c.file_type]);

    const GgufFile file(gguf(c.file));
    ASSERT_EQ(seen["tensors"].size(), file.tensors().size());
    int k_quant = 0;
    for (size_t i = 0; i < file.tensors().size(); ++i) {
      const json& s = seen["tensors"][i];
      EXPECT_EQ(s["dtype"], file.tensors()[i].ggml_type) << file.tensors()[i].name;
      if (s["dtype"] != types["tensor_types"][c.type]) continue;
      ++k_quant;
      uint64_t values = 1;
      for (const json& d : s["shape"]) values *= std::stoull(d.get<std::string>());
      const uint64_t bytes = values / 256 * c.bytes_per_256;
      const uint64_t begin = std::stoull(s["offset"].get<std::string>());
      const uint64_t end = i + 1 < file.tensors().size()
                               ? std::stoull(seen["tensors"][i + 1]["offset"].get<std::string>())
                               : fs::file_size(gguf(c.file)) - file.data_offset();
      EXPECT_EQ(end - begin, (bytes + 31) / 32 * 32) << c.type << " " << s["name"];
    }
    EXPECT_EQ(k_quant, c.tensors) << c.type;
  }
}

// Every file type `--type` takes has the name and number @huggingface/gguf's table gives it.
TEST_F(GgufKQuantCli, FileTypeNamesAndIdsAreThoseOfAnIndependentTable) {
  const json types = node({std::string(JETMOE_SOURCE_DIR) + "/tools/gguf/ggml_types.mjs"});
  for (const char* flag : {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q4_k_s", "q4_k_m", "q5_k", "q5_k_m", "q6_k"}) {
    const std::optional<GgufFileType> type = parse_gguf_file_type(flag);
    ASSERT_TRUE(type) << flag;
    const std::string name = gguf_file_type_name(*type);
    ASSERT_TRUE(types["file_types"].contains(name)) << name;
    EXPECT_EQ(types["file_types"][name], gguf_file_type_id(*type)) << name;
  }
}

TEST_F(GgufKQuantCli, InfoNamesTheTypes) {
  for (const auto& [file, type] : {std::pair{"q4_k", "Q4_K"}, {"q5_k", "Q5_K"}, {"q6_k", "Q6_K"}}) {
    const CliResult r = run_cli({"info", "-m", gguf(file)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(contains(r.out, type)) << r.out;
    EXPECT_TRUE(contains(r.out, "Q8_0")) << r.out;
  }
}

// bench names a GGUF file's type (the dtype of most bytes beside it in the JSON); a checkpoint's
// row names its dtype and has no file type.
TEST_F(GgufKQuantCli, BenchNamesTheFileType) {
  const CliResult r = run_cli({"bench", "-m", gguf("q4_k_m"), "-m", model(), "-t", "1", "-p", "4", "-n", "2", "-r", "1",
                               "--bandwidth-mib", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out)["results"];
  ASSERT_EQ(rows.size(), 4u) << r.out;  // pp4 and tg2 of each model
  for (const json& row : rows) {
    const bool gguf_row = row["model"] == "model-q4_k_m.gguf";
    EXPECT_EQ(row["file_type"], gguf_row ? json("Q4_K_M") : json(nullptr)) << row.dump();
    EXPECT_EQ(row["weight_dtype"], gguf_row ? "Q4_K" : "F32") << row.dump();
  }
  const CliResult table = run_cli({"bench", "-m", gguf("q4_k_m"), "-t", "1", "-p", "4", "-n", "0", "-r", "1",
                                   "--bandwidth-mib", "8"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(contains(table.out, "| model-q4_k_m.gguf | Q4_K_M | ")) << table.out;
}

// info names the file type general.file_type holds, and the stored bits per parameter (weight
// bytes x 8 over the parameter count, which its JSON gives too).
TEST_F(GgufKQuantCli, InfoGivesTheFileTypeAndBitsPerWeight) {
  for (const auto& [file, type] : {std::pair{"q4_k", "Q4_K_S"}, {"q4_k_m", "Q4_K_M"}, {"Q5_K_M", "Q5_K_M"},
                                   {"q6_k", "Q6_K"}, {"q4_0", "Q4_0"}}) {
    const CliResult r = run_cli({"info", "-m", gguf(file)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "\nfile type                   " + std::string(type) + "\n")) << r.out;
    const CliResult j = run_cli({"info", "-m", gguf(file), "--json"});
    ASSERT_EQ(j.exit_code, 0) << j.err;
    const json info = json::parse(j.out);
    EXPECT_EQ(info["file_type"], type);
    double bytes = 0;
    for (const auto& [dtype, entry] : info["weight_bytes"].items()) bytes += entry["bytes"].get<double>();
    EXPECT_NEAR(info["bits_per_weight"].get<double>(), 8 * bytes / info["parameters"]["total"].get<double>(), 1e-9);
  }
  // An extra bit in the matrices shows at the same head (this model's, 32000 x 256, weighs most: Q6_K in the
  // mixes, Q8_0 in Q4_K_S / Q5_K_S); a checkpoint has no file type.
  auto bits = [&](const std::string& path) {
    return json::parse(run_cli({"info", "-m", path, "--json"}).out)["bits_per_weight"].get<double>();
  };
  EXPECT_LT(bits(gguf("q4_k")), bits(gguf("q5_k")));
  EXPECT_LT(bits(gguf("q4_k_m")), bits(gguf("Q5_K_M")));
  const CliResult checkpoint = run_cli({"info", "-m", model()});
  EXPECT_FALSE(contains(checkpoint.out, "file type")) << checkpoint.out;
  EXPECT_TRUE(contains(checkpoint.out, "\nbits per weight             32.00\n")) << checkpoint.out;  // f32
  EXPECT_TRUE(json::parse(run_cli({"info", "-m", model(), "--json"}).out)["file_type"].is_null());
}

// Logits of the Q4_K, Q5_K and Q4_0 files against the float32 checkpoint's: within 4-bit error
// (relative RMS difference measured 0.034 for Q6_K, 0.057 for Q5_K, 0.12 for Q4_K, 0.18 for Q4_0 on this model; unrelated logits
// of the same size differ by ~1.4), Q4_K, with its per-sub-block mins and fitted scales, closer
// than Q4_0 at the same 4.5 bits per weight, and each extra bit closer again.
TEST_F(GgufKQuantCli, ForwardLogitsAreWithinFourBitErrorOfTheCheckpoints) {
  const std::string ids = "1,450,4996,17354,1701,7721,29889,306,4658,338,263,1243";
  auto logits = [&](const std::string& model_path, const std::string& name) {
    const CliResult r = run_cli({"forward", "-m", model_path, "--ids", ids, "--logits-out", dir_ + "/" + name});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return read_npy(dir_ + "/" + name).values;
  };
  const std::vector<double> exact = logits(model(), "f32.npy");
  auto relative_rms = [&](const std::vector<double>& got) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < exact.size(); ++i) {
      diff += (got[i] - exact[i]) * (got[i] - exact[i]);
      norm += exact[i] * exact[i];
    }
    return std::sqrt(diff / norm);
  };
  const double q4k = relative_rms(logits(gguf("q4_k"), "q4k.npy"));
  const double q6k = relative_rms(logits(gguf("q6_k"), "q6k.npy"));
  const double q5k = relative_rms(logits(gguf("q5_k"), "q5k.npy"));
  const double q4_0 = relative_rms(logits(gguf("q4_0"), "q40.npy"));
  const double q4km = relative_rms(logits(gguf("q4_k_m"), "q4km.npy"));
  const double q5km = relative_rms(logits(gguf("Q5_K_M"), "q5km.npy"));
  std::cout << "[ measured ] relative RMS logit error: Q6_K " << q6k << ", Q5_K_M " << q5km << ", Q5_K " << q5k
            << ", Q4_K_M " << q4km << ", Q4_K " << q4k << ", Q4_0 " << q4_0 << "\n";
  EXPECT_LT(q4k, 0.3);
  EXPECT_LT(q4k, q4_0);
  // Q4_K_M's Q6_K head and layer-1 kv_proj (measured 19% less error than Q4_K); Q5_K_M trades a
  // Q8_0 head for Q6_K, about even with Q5_K.
  EXPECT_LT(q4km, 0.9 * q4k);
  EXPECT_LT(q5km, 0.7 * q4km);
  EXPECT_LT(q5k, 0.7 * q4k);
  EXPECT_LT(q6k, 0.7 * q5k);
}

TEST_F(GgufKQuantCli, GenerateAndPerplexityRunOnTheFiles) {
  for (const char* type : {"q4_k", "q5_k", "q6_k", "q4_k_m", "Q5_K_M"}) {
    const CliResult gen = run_cli({"generate", "-m", gguf(type), "-p", "Once upon a time", "-n", "8", "--temp", "0"});
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    EXPECT_TRUE(contains(gen.out, "Once upon a time")) << gen.out;
  }

  std::ofstream(dir_ + "/text.txt") << "The quick brown fox jumps over the lazy dog, and the dog sleeps on.\n";
  auto perplexity = [&](const std::string& model_path) {
    const CliResult r = run_cli({"perplexity", "-m", model_path, "-f", dir_ + "/text.txt", "-t", "2", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out)["perplexity"].get<double>();
  };
  const double exact = perplexity(model());
  for (const char* type : {"q4_k", "q5_k", "q6_k", "q4_k_m", "Q5_K_M"}) {
    const double got = perplexity(gguf(type));
    // A random model: perplexity near the vocabulary size either way; the file's within 10%.
    EXPECT_TRUE(std::isfinite(got));
    EXPECT_LT(std::fabs(got / exact - 1), 0.1) << type << " " << got << ", checkpoint " << exact;
  }
}

TEST_F(GgufKQuantCli, UnknownKQuantTypesAreRefused) {
  for (const char* type : {"q6_k_m", "q3_k", "q4_k_l", "q8_0_s"}) {
    const CliResult r = run_cli({"quantize", "-m", model(), "-o", dir_ + "/x.gguf", "--type", type});
    EXPECT_EQ(r.exit_code, 2) << type;
    EXPECT_TRUE(contains(r.err, "unknown type '" + std::string(type) + "'")) << r.err;
    EXPECT_FALSE(fs::exists(dir_ + "/x.gguf")) << type;
  }
}

}  // namespace
}  // namespace jetmoe::e2e
