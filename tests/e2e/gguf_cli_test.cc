// `jetmoe quantize` and GGUF models through the CLI: a random model made by `jetmoe init` (with
// the Llama-2 tokenizer of the tokenizer test assets) is written as GGUF at several types; an
// independent reader (@huggingface/gguf, tools/gguf) must see what our reader sees; `info`,
// `tokenize`, `forward` and `generate` accept the .gguf file, and the F32 file's logits are the
// checkpoint's, bit for bit.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "server_harness.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string asset(const std::string& relative) {
  const char* env = std::getenv("JETMOE_TOKENIZER_ASSETS");
  const std::string dir = env && *env ? env : std::string(JETMOE_SOURCE_DIR) + "/build/tokenizer-assets";
  const std::string path = dir + "/" + relative;
  if (!fs::exists(path))
    throw std::runtime_error("missing tokenizer test asset " + path +
                             ": run tools/tokenizer/fetch_assets.sh (or set JETMOE_TOKENIZER_ASSETS)");
  return path;
}

class GgufCli : public ::testing::Test {
 protected:
  static constexpr const char* kTemplate = "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}</s>\n{% endfor %}";

  static void SetUpTestSuite() {
    dir_ = server_detail::fresh_dir("jetmoe_e2e_gguf").string();
    // Every size a multiple of 32, so that every matrix is quantized.
    std::ofstream(dir_ + "/config.json") << json{{"model_type", "jetmoe"},
                                                 {"vocab_size", 32000},
                                                 {"hidden_size", 64},
                                                 {"num_hidden_layers", 2},
                                                 {"num_local_experts", 4},
                                                 {"num_experts_per_tok", 2},
                                                 {"num_key_value_heads", 2},
                                                 {"kv_channels", 16},
                                                 {"intermediate_size", 64},
                                                 {"max_position_embeddings", 256},
                                                 {"rms_norm_eps", 1e-5},
                                                 {"tie_word_embeddings", false},
                                                 {"initializer_range", 0.5}}
                                                    .dump();
    const CliResult init = run_cli({"init", "--config", dir_ + "/config.json", "--out", model(), "--dtype", "f32",
                                    "--seed", "5", "--tokenizer", asset("llama2/tokenizer.json")});
    ASSERT_EQ(init.exit_code, 0) << init.err;
    std::ofstream(model() + "/tokenizer_config.json") << json{{"chat_template", kTemplate}}.dump();
    for (const char* type : {"f32", "q8_0", "q4_0"}) {
      quantize_out_[type] = run_cli({"quantize", "-m", model(), "-o", gguf(type), "--type", type, "-t", "2"});
      ASSERT_EQ(quantize_out_[type].exit_code, 0) << quantize_out_[type].err;
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string model() { return dir_ + "/model"; }
  static std::string gguf(const std::string& type) { return dir_ + "/model-" + type + ".gguf"; }

  static inline std::string dir_;
  static inline std::map<std::string, CliResult> quantize_out_;
};

TEST_F(GgufCli, QuantizePrintsWhatItConverted) {
  const std::string& out = quantize_out_["q4_0"].out;
  for (const std::string& part : std::vector<std::string>{"token_embd.weight", "blk.1.ffn_gate_up_exps.weight", "[4, 128, 64]", "F32   Q4_0",
                           "blk.0.attn_norm.weight", "norm", "router", "bias", "output.weight", "F32   Q8_0",
                                  "output head", "total: 25 tensors", "wrote " + gguf("q4_0")}) {
    EXPECT_TRUE(contains(out, part)) << "lacks '" << part << "':\n" << out;
  }
  const GgufFile file(gguf("q4_0"));
  EXPECT_EQ(file.find("general.name")->text, "model");
  EXPECT_EQ(file.find("tokenizer.chat_template")->text, kTemplate);
  EXPECT_EQ(file.find("tokenizer.huggingface.json")->text, read_whole_file(model() + "/tokenizer.json"));
}

// @huggingface/gguf, written independently of us, reads the same header: every key with its type
// and value, every tensor with its shape (ne order), type and offset, and the data offset.
TEST_F(GgufCli, AnIndependentReaderSeesWhatWeWrote) {
  const std::string script = std::string(JETMOE_SOURCE_DIR) + "/tools/gguf/read_gguf.mjs";
  ASSERT_TRUE(fs::exists(std::string(JETMOE_SOURCE_DIR) + "/tools/gguf/node_modules/@huggingface/gguf"))
      << "the @huggingface/gguf npm package is missing: run scripts/install-deps.sh";
  for (const char* type : {"f32", "q4_0"}) {
    const std::string out = dir_ + "/node.json", err = dir_ + "/node.err";
    const pid_t node = server_detail::spawn({"node", script, gguf(type)}, out, err);
    ASSERT_EQ(server_detail::wait_exit(node, std::chrono::seconds(60)), 0) << read_whole_file(err);
    const json seen = json::parse(read_whole_file(out));
    const GgufFile file(gguf(type));

    EXPECT_EQ(seen["version"], 3);
    EXPECT_EQ(seen["tensor_count"], std::to_string(file.tensors().size()));
    EXPECT_EQ(seen["kv_count"], std::to_string(file.metadata().size()));
    EXPECT_EQ(seen["tensor_data_offset"], std::to_string(file.data_offset()));
    ASSERT_EQ(seen["metadata"].size(), file.metadata().size());
    for (const GgufKeyValue& kv : file.metadata()) {
      SCOPED_TRACE(kv.key);
      ASSERT_TRUE(seen["metadata"].contains(kv.key));
      const json& entry = seen["metadata"][kv.key];
      const GgufValue& v = kv.value;
      EXPECT_EQ(entry["type"], uint32_t(v.type));
      const json& value = entry["value"];
      switch (v.type) {
        case GgufType::kString: EXPECT_EQ(value, v.text); break;
        case GgufType::kBool: EXPECT_EQ(value, *v.as_bool()); break;
        case GgufType::kFloat32:
        case GgufType::kFloat64: EXPECT_EQ(value.get<double>(), *v.as_float()); break;
        case GgufType::kUint64:
        case GgufType::kInt64: EXPECT_EQ(value, std::to_string(*v.as_int())); break;
        case GgufType::kArray:
          EXPECT_EQ(entry["sub_type"], uint32_t(v.array_type));
          ASSERT_EQ(v.array_type, GgufType::kUint8);  // the only array we write (a tokenizer.model)
          EXPECT_EQ(value.size(), v.packed.size());
          break;
        default: EXPECT_EQ(value.get<int64_t>(), *v.as_int()); break;
      }
    }
    ASSERT_EQ(seen["tensors"].size(), file.tensors().size());
    for (size_t i = 0; i < file.tensors().size(); ++i) {
      const GgufTensor& t = file.tensors()[i];
      const json& s = seen["tensors"][i];
      EXPECT_EQ(s["name"], t.name);
      EXPECT_EQ(s["dtype"], t.ggml_type) << t.name;
      EXPECT_EQ(s["offset"], std::to_string(t.offset)) << t.name;
      std::vector<std::string> ne;
      for (auto d = t.view.shape.rbegin(); d != t.view.shape.rend(); ++d) ne.push_back(std::to_string(*d));
      EXPECT_EQ(s["shape"], json(ne)) << t.name;
    }
  }
}

TEST_F(GgufCli, InfoDescribesTheGgufFile) {
  const CliResult text = run_cli({"info", "-m", gguf("q8_0")});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "weights Q8_0")) << text.out;
  EXPECT_TRUE(contains(text.out, "weights F32")) << text.out;  // norms, routers, biases
  const CliResult gguf_json = run_cli({"info", "-m", gguf("q4_0"), "--json"});
  const CliResult dir_json = run_cli({"info", "-m", model(), "--json"});
  ASSERT_EQ(gguf_json.exit_code, 0) << gguf_json.err;
  ASSERT_EQ(dir_json.exit_code, 0) << dir_json.err;
  EXPECT_EQ(json::parse(gguf_json.out)["config"], json::parse(dir_json.out)["config"]);
  EXPECT_EQ(json::parse(gguf_json.out)["parameters"], json::parse(dir_json.out)["parameters"]);
}

TEST_F(GgufCli, TokenizeWithTheEmbeddedTokenizer) {
  const std::string text = "The GGUF file carries its tokenizer: naïve café 日本語 </s>";
  const CliResult from_dir = run_cli({"tokenize", "--tokenizer", model(), "-p", text});
  const CliResult from_gguf = run_cli({"tokenize", "--tokenizer", gguf("q4_0"), "-p", text});
  ASSERT_EQ(from_gguf.exit_code, 0) << from_gguf.err;
  EXPECT_EQ(from_gguf.out, from_dir.out);
}

TEST_F(GgufCli, F32GgufLogitsAreTheCheckpointsBitForBit) {
  const std::string ids = "1,450,4996,17354,1701,7721,29889";
  const CliResult dir = run_cli({"forward", "-m", model(), "--ids", ids, "--logits-out", dir_ + "/dir.npy"});
  const CliResult file = run_cli({"forward", "-m", gguf("f32"), "--ids", ids, "--logits-out", dir_ + "/gguf.npy"});
  ASSERT_EQ(dir.exit_code, 0) << dir.err;
  ASSERT_EQ(file.exit_code, 0) << file.err;
  json file_out = json::parse(file.out), dir_out = json::parse(dir.out);
  file_out.erase("logits_out");
  dir_out.erase("logits_out");
  EXPECT_EQ(file_out, dir_out);  // argmax and loss
  EXPECT_EQ(read_whole_file(dir_ + "/gguf.npy"), read_whole_file(dir_ + "/dir.npy"));
}

TEST_F(GgufCli, GenerateFromGgufFiles) {
  const std::vector<std::string> args = {"-p", "Once upon a time", "-n", "8", "--temp", "0"};
  auto generate = [&](const std::string& model_path) {
    std::vector<std::string> full = {"generate", "-m", model_path};
    full.insert(full.end(), args.begin(), args.end());
    return run_cli(full);
  };
  const CliResult dir = generate(model());
  ASSERT_EQ(dir.exit_code, 0) << dir.err;
  const CliResult f32 = generate(gguf("f32"));
  ASSERT_EQ(f32.exit_code, 0) << f32.err;
  EXPECT_EQ(f32.out, dir.out);
  for (const char* type : {"q8_0", "q4_0"}) {
    const CliResult quantized = generate(gguf(type));
    ASSERT_EQ(quantized.exit_code, 0) << type << ": " << quantized.err;
    EXPECT_TRUE(contains(quantized.out, "Once upon a time")) << quantized.out;
  }
}

TEST_F(GgufCli, BadInputsAreNamed) {
  CliResult r = run_cli({"quantize", "-m", model(), "-o", dir_ + "/x.gguf", "--type", "q5_0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "q5_0")) << r.err;
  r = run_cli({"quantize", "-m", dir_ + "/no-such-model", "-o", dir_ + "/x.gguf"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "no-such-model")) << r.err;
  r = run_cli({"quantize", "-m", model(), "-o", dir_ + "/no-such-dir/x.gguf"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "no-such-dir/x.gguf")) << r.err;
  r = run_cli({"generate", "-m", model() + "/config.json", "--prompt-ids", "1,2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "not a GGUF file")) << r.err;
  r = run_cli({"info", "-m", dir_ + "/config.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "config.json: not a GGUF file")) << r.err;
}

}  // namespace
}  // namespace jetmoe::e2e
