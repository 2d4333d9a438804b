// config.json parsing: the committed HF fixtures, the three key spellings of spec P12, missing
// and conflicting sizes, wrong types, invalid JSON, and the round trip through config_to_json.
#include "formats/hf_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "format_test_util.h"

namespace jetmoe {
namespace {

using nlohmann::json;
using testing::contains_all;
using testing::error_message;
using testing::fixture;

// jetmoe-8b in HF-native keys (spec §1.1), with P9's final-norm eps.
json hf_native_8b() {
  return json::parse(R"({
    "model_type": "jetmoe", "architectures": ["JetMoeForCausalLM"],
    "vocab_size": 32000, "hidden_size": 2048, "num_hidden_layers": 24,
    "num_local_experts": 8, "num_experts_per_tok": 2, "num_key_value_heads": 16,
    "kv_channels": 128, "intermediate_size": 5632, "max_position_embeddings": 4096,
    "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "activation_function": "silu",
    "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.01, "aux_loss_coef": 0.01,
    "torch_dtype": "bfloat16"
  })");
}

// The same model in the original remote-code keys.
json original_8b() {
  return json::parse(R"({
    "model_type": "jetmoe", "vocab_size": 32000, "hidden_size": 2048, "num_layers": 24,
    "moe_num_experts": 8, "moe_top_k": 2, "num_key_value_heads": 16, "num_attention_heads": 32,
    "kv_channels": 128, "ffn_hidden_size": 5632, "n_positions": 4096, "rotary_percent": 1.0,
    "glu": true, "bias": true, "layer_norm_epsilon": 1e-5, "activation_function": "silu",
    "rope_theta": 10000.0, "torch_dtype": "bfloat16"
  })");
}

// The same model GPT-2 style: n_head counts all query heads, kv heads are derived.
json gpt2_style_8b() {
  return json::parse(R"({
    "vocab_size": 32000, "n_embd": 2048, "n_layer": 24, "n_head": 32,
    "moe_num_experts": 8, "moe_top_k": 2, "kv_channels": 128, "ffn_hidden_size": 5632,
    "n_positions": 4096, "layer_norm_epsilon": 1e-5, "torch_dtype": "bfloat16"
  })");
}

JetMoeConfig parse(const json& j) { return parse_config_json(j.dump(), "config.json"); }

std::string parse_error(const json& j) {
  return error_message([&] { parse(j); });
}

void expect_8b_sizes(const JetMoeConfig& c) {
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_layers, 24);
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.top_k, 2);
  EXPECT_EQ(c.num_kv_heads, 16);
  EXPECT_EQ(c.num_attention_heads(), 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.kv_proj_size(), 2048);
  EXPECT_EQ(c.intermediate_size, 5632);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.torch_dtype, DType::BF16);
}

std::vector<std::string> hf_reference_cases() {
  std::vector<std::string> cases;
  for (const auto& entry : std::filesystem::directory_iterator(fixture("hf-reference"))) {
    if (std::filesystem::exists(entry.path() / "ckpt" / "config.json")) cases.push_back(entry.path().string());
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

TEST(HfConfig, ReadsTheCommittedReferenceConfigs) {
  const auto cases = hf_reference_cases();
  ASSERT_GE(cases.size(), 2u);
  for (const std::string& dir : cases) {
    SCOPED_TRACE(dir);
    const JetMoeConfig c = load_config(dir + "/ckpt/config.json");
    // Expected values come from the manifest written by the fixture generator.
    const json m = json::parse(testing::read_bytes(dir + "/manifest.json"))["config"];
    EXPECT_EQ(c.vocab_size, m["vocab_size"].get<int64_t>());
    EXPECT_EQ(c.hidden_size, m["hidden_size"].get<int64_t>());
    EXPECT_EQ(c.num_layers, m["num_hidden_layers"].get<int64_t>());
    EXPECT_EQ(c.num_experts, m["num_local_experts"].get<int64_t>());
    EXPECT_EQ(c.top_k, m["num_experts_per_tok"].get<int64_t>());
    EXPECT_EQ(c.num_kv_heads, m["num_key_value_heads"].get<int64_t>());
    EXPECT_EQ(c.head_dim, m["kv_channels"].get<int64_t>());
    EXPECT_EQ(c.intermediate_size, m["intermediate_size"].get<int64_t>());
    EXPECT_EQ(c.max_position_embeddings, m["max_position_embeddings"].get<int64_t>());
    EXPECT_EQ(c.rms_norm_eps, m["rms_norm_eps"].get<double>());
    EXPECT_EQ(c.rope_theta, m["rope_theta"].get<double>());
    EXPECT_EQ(c.initializer_range, m["initializer_range"].get<double>());
    EXPECT_EQ(c.aux_loss_coef, m["aux_loss_coef"].get<double>());
    EXPECT_EQ(c.tie_word_embeddings, m["tie_word_embeddings"].get<bool>());
    EXPECT_EQ(c.bos_token_id, m["bos_token_id"].get<int64_t>());
    EXPECT_EQ(c.eos_token_id, m["eos_token_id"].get<int64_t>());
    DType dtype;
    ASSERT_TRUE(parse_dtype(m["torch_dtype"].get<std::string>(), &dtype));
    EXPECT_EQ(c.torch_dtype, dtype);
  }
  // Spot values straight from the files, in case the manifest and config ever disagree.
  const JetMoeConfig c1 = load_config(fixture("hf-reference/c1_base_f32/ckpt/config.json"));
  EXPECT_EQ(c1.hidden_size, 64);
  EXPECT_EQ(c1.num_attention_heads(), 8);
  EXPECT_EQ(c1.torch_dtype, DType::F32);
  EXPECT_EQ(load_config(fixture("hf-reference/c4_bf16/ckpt/config.json")).torch_dtype, DType::BF16);
}

TEST(HfConfig, AcceptsAllThreeSpellingsOfTheSameModel) {
  expect_8b_sizes(parse(hf_native_8b()));
  expect_8b_sizes(parse(original_8b()));
  expect_8b_sizes(parse(gpt2_style_8b()));
}

TEST(HfConfig, DerivesKvHeadsFromTotalQueryHeads) {
  json j = hf_native_8b();
  j.erase("num_key_value_heads");
  j["num_attention_heads"] = 32;
  EXPECT_EQ(parse(j).num_kv_heads, 16);
  j["num_attention_heads"] = 33;  // not a multiple of top_k = 2
  EXPECT_TRUE(contains_all(parse_error(j), {"config.json", "num_attention_heads", "33", "num_experts_per_tok"}));
}

TEST(HfConfig, ReadsRopeThetaFromRopeParameters) {
  json j = hf_native_8b();
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500000.0}};
  EXPECT_EQ(parse(j).rope_theta, 500000.0);
  j["rope_parameters"]["rope_type"] = "yarn";
  EXPECT_TRUE(contains_all(parse_error(j), {"rope_type", "yarn"}));
  j["rope_parameters"] = 5;
  EXPECT_TRUE(contains_all(parse_error(j), {"rope_parameters", "must be an object"}));
}

TEST(HfConfig, NonSizeFieldsDefaultLikeHfJetMoeConfig) {
  const json j = json::parse(R"({"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 1,
      "num_local_experts": 2, "num_experts_per_tok": 1, "num_key_value_heads": 2,
      "kv_channels": 8, "intermediate_size": 16})");
  const JetMoeConfig c = parse(j);
  // HF JetMoeConfig.__init__ defaults.
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.initializer_range, 0.01);
  EXPECT_EQ(c.aux_loss_coef, 0.01);
}

TEST(HfConfig, EveryMissingSizeIsAnErrorNamingItsSpellings) {
  const std::vector<std::pair<std::string, std::vector<std::string_view>>> sizes = {
      {"vocab_size", {"vocab_size"}},
      {"hidden_size", {"hidden_size", "n_embd"}},
      {"num_hidden_layers", {"num_hidden_layers", "num_layers", "n_layer"}},
      {"num_local_experts", {"num_local_experts", "moe_num_experts"}},
      {"num_experts_per_tok", {"num_experts_per_tok", "moe_top_k"}},
      {"num_key_value_heads", {"num_key_value_heads", "num_attention_heads", "n_head"}},
      {"kv_channels", {"kv_channels", "head_dim"}},
      {"intermediate_size", {"intermediate_size", "ffn_hidden_size"}},
  };
  for (const auto& [key, spellings] : sizes) {
    SCOPED_TRACE(key);
    json j = hf_native_8b();
    j.erase(key);
    const std::string message = parse_error(j);
    EXPECT_TRUE(contains_all(message, {"config.json", "missing"}));
    for (std::string_view spelling : spellings) EXPECT_TRUE(contains_all(message, {spelling}));
  }
  json j = hf_native_8b();
  j["hidden_size"] = nullptr;  // null counts as missing, never as a default
  EXPECT_TRUE(contains_all(parse_error(j), {"missing", "hidden_size"}));
}

TEST(HfConfig, ConflictingSpellingsAreAnError) {
  json j = hf_native_8b();
  j["num_layers"] = 12;
  EXPECT_TRUE(contains_all(parse_error(j), {"config.json", "num_hidden_layers", "24", "num_layers", "12"}));
  j["num_layers"] = 24;  // agreeing spellings are fine
  EXPECT_EQ(parse(j).num_layers, 24);

  j = hf_native_8b();
  j["n_embd"] = 4096;
  EXPECT_TRUE(contains_all(parse_error(j), {"hidden_size", "n_embd"}));
  j = hf_native_8b();
  j["rms_norm_eps"] = 1e-6;
  j["layer_norm_epsilon"] = 1e-5;
  EXPECT_TRUE(contains_all(parse_error(j), {"rms_norm_eps", "layer_norm_epsilon"}));
  j = hf_native_8b();
  j["rope_parameters"] = {{"rope_theta", 1e6}};
  EXPECT_TRUE(contains_all(parse_error(j), {"rope_theta", "rope_parameters.rope_theta"}));
  j = gpt2_style_8b();
  j["num_attention_heads"] = 16;
  EXPECT_TRUE(contains_all(parse_error(j), {"num_attention_heads", "n_head"}));
}

TEST(HfConfig, TotalQueryHeadsMustMatchKvHeadsTimesTopK) {
  json j = hf_native_8b();
  j["num_attention_heads"] = 16;  // the stock (non-JetMoE) meaning of the key
  EXPECT_TRUE(contains_all(parse_error(j), {"num_attention_heads (16)", "num_key_value_heads (16)", "= 32"}));
  j["num_attention_heads"] = 32;
  EXPECT_EQ(parse(j).num_kv_heads, 16);
}

TEST(HfConfig, WrongJsonTypesNameTheFieldAndTheType) {
  struct Case {
    const char* key;
    json value;
    std::vector<std::string_view> expected;
  };
  const std::vector<Case> cases = {
      {"hidden_size", "2048", {"'hidden_size'", "integer", "string"}},
      {"hidden_size", 2048.0, {"'hidden_size'", "integer", "floating-point"}},
      {"num_hidden_layers", json::array({24}), {"'num_hidden_layers'", "array"}},
      {"tie_word_embeddings", "true", {"'tie_word_embeddings'", "true or false", "string"}},
      {"rope_theta", "1e4", {"'rope_theta'", "number", "string"}},
      {"rms_norm_eps", true, {"'rms_norm_eps'", "number", "boolean"}},
      {"bos_token_id", json::array({1}), {"'bos_token_id'", "integer", "array"}},
      {"torch_dtype", 16, {"'torch_dtype'", "string", "integer"}},
      {"activation_function", json::object(), {"'activation_function'", "string", "object"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key);
    json j = hf_native_8b();
    j[c.key] = c.value;
    EXPECT_TRUE(contains_all(parse_error(j), {"config.json"}));
    for (std::string_view part : c.expected) EXPECT_TRUE(contains_all(parse_error(j), {part}));
  }
  EXPECT_TRUE(contains_all(error_message([] { parse_config_json("[1, 2]", "c.json"); }), {"c.json", "object", "array"}));
}

TEST(HfConfig, RefusesValuesOutsideTheModel) {
  struct Case {
    const char* key;
    json value;
    std::vector<std::string_view> expected;
  };
  const std::vector<Case> cases = {
      {"num_experts_per_tok", 9, {"num_experts_per_tok", "between 1 and 8", "9"}},
      {"num_experts_per_tok", 0, {"num_experts_per_tok", "0"}},
      {"hidden_size", 0, {"hidden_size", "got 0"}},
      {"num_hidden_layers", -3, {"num_hidden_layers", "-3"}},
      {"vocab_size", int64_t(1) << 40, {"vocab_size", "1099511627776"}},
      {"intermediate_size", uint64_t(18446744073709551615ull), {"intermediate_size", "out of range"}},
      {"kv_channels", 127, {"kv_channels", "even"}},
      {"bos_token_id", 32000, {"bos_token_id", "32000"}},
      {"eos_token_id", -1, {"eos_token_id", "-1"}},
      {"rms_norm_eps", 0.0, {"rms_norm_eps", "> 0"}},
      {"rope_theta", -10.0, {"rope_theta", "> 0"}},
      {"aux_loss_coef", -0.5, {"aux_loss_coef"}},
      {"activation_function", "gelu", {"activation_function", "gelu", "silu"}},
      {"rotary_percent", 0.5, {"rotary_percent", "0.5"}},
      {"glu", false, {"glu"}},
      {"bias", false, {"bias"}},
      {"model_type", "llama", {"model_type", "llama", "jetmoe"}},
      {"torch_dtype", "float64", {"torch_dtype", "float64"}},
      {"rope_scaling", json{{"type", "linear"}, {"factor", 2.0}}, {"rope_scaling"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key);
    json j = hf_native_8b();
    j[c.key] = c.value;
    const std::string message = parse_error(j);
    EXPECT_TRUE(contains_all(message, {"config.json"}));
    for (std::string_view part : c.expected) EXPECT_TRUE(contains_all(message, {part}));
  }
}

TEST(HfConfig, ValidateConfigChecksConfigsBuiltInCode) {
  JetMoeConfig c = parse(hf_native_8b());
  validate_config(c, "built");
  c.top_k = 0;
  EXPECT_TRUE(contains_all(error_message([&] { validate_config(c, "built"); }), {"built", "num_experts_per_tok"}));
  c = parse(hf_native_8b());
  c.num_layers = 1 << 20;  // sizes so large that parameter counts could overflow
  EXPECT_TRUE(contains_all(error_message([&] { validate_config(c, "built"); }), {"num_hidden_layers"}));
  c = parse(hf_native_8b());
  c.rms_norm_eps = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(contains_all(error_message([&] { validate_config(c, "built"); }), {"rms_norm_eps"}));
}

TEST(HfConfig, InvalidJsonNamesTheFileAndThePosition) {
  const std::string text = "{\n  \"vocab_size\": 32000,\n  \"hidden_size\": @,\n}\n";
  EXPECT_TRUE(contains_all(error_message([&] { parse_config_json(text, "my/config.json"); }),
                           {"my/config.json", "not valid JSON", "line 3"}));
  EXPECT_TRUE(contains_all(error_message([] { parse_config_json("", "empty.json"); }), {"empty.json", "not valid JSON"}));
  EXPECT_TRUE(contains_all(error_message([] { load_config("/nonexistent/dir/config.json"); }),
                           {"/nonexistent/dir/config.json", "cannot open"}));
}

TEST(HfConfig, RepeatedKeysAreRefused) {
  // nlohmann would keep the last value; a config that says two things is an error.
  const std::string text = R"({"hidden_size": 64, "vocab_size": 10, "hidden_size": 128})";
  EXPECT_TRUE(contains_all(error_message([&] { parse_config_json(text, "config.json"); }),
                           {"config.json", "'hidden_size' twice"}));
}

TEST(HfConfig, RoundTripsThroughConfigToJson) {
  for (const json& j : {hf_native_8b(), original_8b(), gpt2_style_8b()}) {
    const JetMoeConfig c = parse(j);
    const std::string text = config_to_json(c);
    const JetMoeConfig back = parse_config_json(text, "written");
    EXPECT_EQ(config_to_json(back), text);
    expect_8b_sizes(back);
    const json written = json::parse(text);
    EXPECT_EQ(written["model_type"], "jetmoe");
    EXPECT_EQ(written["architectures"], json::array({"JetMoeForCausalLM"}));
    EXPECT_EQ(written["num_attention_heads"], 32);
  }
}

// The keys transformers' JetMoeConfig.__init__ reads (configuration_jetmoe.py); a written
// config must name every one of them, since HF silently defaults the ones it does not find.
TEST(HfConfig, WrittenConfigMatchesWhatHfSavedForTheFixtures) {
  for (const std::string& dir : hf_reference_cases()) {
    SCOPED_TRACE(dir);
    const json saved_by_hf = json::parse(testing::read_bytes(dir + "/ckpt/config.json"));
    const json ours = json::parse(config_to_json(load_config(dir + "/ckpt/config.json")));
    for (const char* key :
         {"vocab_size", "hidden_size", "num_hidden_layers", "num_key_value_heads", "kv_channels", "intermediate_size",
          "max_position_embeddings", "activation_function", "num_local_experts", "num_experts_per_tok",
          "output_router_logits", "aux_loss_coef", "use_cache", "bos_token_id", "eos_token_id", "tie_word_embeddings",
          "rope_theta", "rms_norm_eps", "initializer_range", "attention_dropout", "model_type", "architectures",
          "torch_dtype"}) {
      ASSERT_TRUE(saved_by_hf.contains(key)) << key;
      ASSERT_TRUE(ours.contains(key)) << key;
      EXPECT_EQ(ours[key], saved_by_hf[key]) << key;
    }
  }
}

}  // namespace
}  // namespace jetmoe
