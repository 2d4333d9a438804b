#include "formats/hf_config.h"

#include <cmath>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/text_file.h"
#include "formats/json_strict.h"

namespace jetmoe {

using nlohmann::json;

namespace {

// The key names one quantity may have: HF-native first, then the original remote-code name,
// then GPT-2 style (spec P12). A dotted name ("rope_parameters.rope_theta") looks inside an object.
using Spellings = std::vector<std::string_view>;

const Spellings kVocabSize = {"vocab_size"};
const Spellings kHiddenSize = {"hidden_size", "n_embd"};
const Spellings kNumLayers = {"num_hidden_layers", "num_layers", "n_layer"};
const Spellings kNumExperts = {"num_local_experts", "moe_num_experts"};
const Spellings kTopK = {"num_experts_per_tok", "moe_top_k"};
const Spellings kNumKvHeads = {"num_key_value_heads"};
const Spellings kTotalHeads = {"num_attention_heads", "n_head"};  // = kv heads x top_k
const Spellings kHeadDim = {"kv_channels", "head_dim"};
const Spellings kIntermediate = {"intermediate_size", "ffn_hidden_size"};
const Spellings kMaxPositions = {"max_position_embeddings", "n_positions"};
const Spellings kRopeTheta = {"rope_theta", "rope_parameters.rope_theta"};
const Spellings kRmsNormEps = {"rms_norm_eps", "layer_norm_epsilon"};
const Spellings kInitRange = {"initializer_range"};
const Spellings kAuxLossCoef = {"aux_loss_coef"};
const Spellings kTieEmbeddings = {"tie_word_embeddings"};
const Spellings kBosId = {"bos_token_id"};
const Spellings kEosId = {"eos_token_id"};
const Spellings kDtype = {"torch_dtype", "dtype"};

std::string quoted_list(const Spellings& keys) {
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out += i + 1 == keys.size() ? " or " : ", ";
    out += "'" + std::string(keys[i]) + "'";
  }
  return out;
}

// Reads typed values out of the config object; every message names the file and the key.
class ConfigReader {
 public:
  ConfigReader(const json& root, const std::string& source) : root_(root), source_(source) {}

  // The value under the first spelling present, after checking that every other spelling
  // present holds the same value. nullopt when no spelling is present.
  template <typename T>
  std::optional<T> find(const Spellings& keys) const {
    std::optional<T> found;
    std::string_view found_key;
    for (std::string_view key : keys) {
      const json* value = lookup(key);
      if (!value) continue;
      T converted = convert<T>(*value, key);
      if (!found) {
        found = converted;
        found_key = key;
      } else if (!(*found == converted)) {
        fail(source_, ": '", found_key, "' (", shown(lookup(found_key)), ") and '", key, "' (",
             shown(value), ") disagree; give one value");
      }
    }
    return found;
  }

  // A size the model cannot be built without: no default, so a missing key is an error.
  int64_t require_size(const Spellings& keys) const {
    std::optional<int64_t> value = find<int64_t>(keys);
    if (!value) {
      fail(source_, ": missing '", keys[0], "'", keys.size() > 1 ? " (accepted spellings: " : "",
           keys.size() > 1 ? quoted_list(keys) : "", keys.size() > 1 ? ")" : "");
    }
    return *value;
  }

  template <typename T>
  T find_or(const Spellings& keys, T fallback) const {
    return find<T>(keys).value_or(fallback);
  }

  const std::string& source() const { return source_; }

 private:
  const json* lookup(std::string_view key) const {
    const json* object = &root_;
    std::string_view rest = key;
    for (;;) {
      const size_t dot = rest.find('.');
      const std::string part(rest.substr(0, dot));
      auto it = object->find(part);
      if (it == object->end() || it->is_null()) return nullptr;
      if (dot == std::string_view::npos) return &*it;
      if (!it->is_object()) {
        fail(source_, ": '", part, "' must be an object, got ", json_type_phrase(*it));
      }
      object = &*it;
      rest = rest.substr(dot + 1);
    }
  }

  static std::string shown(const json* value) { return value ? value->dump() : "?"; }

  template <typename T>
  T convert(const json& value, std::string_view key) const {
    if constexpr (std::is_same_v<T, int64_t>) {
      if (value.is_number_unsigned()) {
        if (value.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
          fail(source_, ": '", key, "' = ", value.dump(), " is out of range");
        }
        return int64_t(value.get<uint64_t>());
      }
      if (value.is_number_integer()) return value.get<int64_t>();
      fail(source_, ": '", key, "' must be an integer, got ", json_type_phrase(value));
    } else if constexpr (std::is_same_v<T, double>) {
      if (value.is_number()) return value.get<double>();
      fail(source_, ": '", key, "' must be a number, got ", json_type_phrase(value));
    } else if constexpr (std::is_same_v<T, bool>) {
      if (value.is_boolean()) return value.get<bool>();
      fail(source_, ": '", key, "' must be true or false, got ", json_type_phrase(value));
    } else {
      static_assert(std::is_same_v<T, std::string>);
      if (value.is_string()) return value.get<std::string>();
      fail(source_, ": '", key, "' must be a string, got ", json_type_phrase(value));
    }
  }

  const json& root_;
  const std::string& source_;
};

// Keys of the original code that describe a variant jetmoe.cpp does not implement: accepted
// only with the value that matches JetMoE-8B.
void check_fixed_choices(const ConfigReader& reader) {
  const std::string& source = reader.source();
  if (auto model_type = reader.find<std::string>({"model_type"}); model_type && *model_type != "jetmoe") {
    fail(source, ": model_type is '", *model_type, "', expected 'jetmoe'");
  }
  if (auto act = reader.find<std::string>({"activation_function"}); act && *act != "silu") {
    fail(source, ": activation_function '", *act, "' is not supported (JetMoE uses 'silu')");
  }
  if (auto percent = reader.find<double>({"rotary_percent"}); percent && *percent != 1.0) {
    fail(source, ": rotary_percent ", *percent, " is not supported (RoPE must cover the whole head, 1.0)");
  }
  if (auto glu = reader.find<bool>({"glu"}); glu && !*glu) {
    fail(source, ": glu = false is not supported (JetMoE's MLP experts are gated)");
  }
  if (auto bias = reader.find<bool>({"bias"}); bias && !*bias) {
    fail(source, ": bias = false is not supported (JetMoE adds an output bias to MoA and MoE)");
  }
  if (auto type = reader.find<std::string>({"rope_parameters.rope_type"}); type && *type != "default") {
    fail(source, ": rope_parameters.rope_type '", *type, "' is not supported (only 'default' RoPE)");
  }
}

// num_key_value_heads, or (when absent) the total query heads divided by top_k.
int64_t resolve_kv_heads(const ConfigReader& reader, int64_t top_k) {
  const std::string& source = reader.source();
  const std::optional<int64_t> kv_heads = reader.find<int64_t>(kNumKvHeads);
  const std::optional<int64_t> total_heads = reader.find<int64_t>(kTotalHeads);
  if (!kv_heads && !total_heads) {
    fail(source, ": missing 'num_key_value_heads' (or the total query heads 'num_attention_heads' / "
                 "'n_head', which JetMoE defines as num_key_value_heads x num_experts_per_tok)");
  }
  if (!total_heads) return *kv_heads;
  if (kv_heads) {
    if (*total_heads != *kv_heads * top_k) {
      fail(source, ": num_attention_heads (", *total_heads, ") must equal num_key_value_heads (", *kv_heads,
           ") x num_experts_per_tok (", top_k, ") = ", *kv_heads * top_k);
    }
    return *kv_heads;
  }
  if (top_k <= 0 || *total_heads % top_k != 0) {
    fail(source, ": num_attention_heads (", *total_heads, ") is not a multiple of num_experts_per_tok (",
         top_k, "), so num_key_value_heads cannot be derived");
  }
  return *total_heads / top_k;
}

DType parse_torch_dtype(const ConfigReader& reader) {
  const std::optional<std::string> name = reader.find<std::string>(kDtype);
  if (!name) return DType::BF16;
  DType dtype;
  if (*name == "float32" || *name == "bfloat16" || *name == "float16") {
    parse_dtype(*name, &dtype);
    return dtype;
  }
  fail(reader.source(), ": torch_dtype '", *name, "' is not supported (float32, bfloat16 or float16)");
}

void check_range(const std::string& source, std::string_view name, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) fail(source, ": ", name, " must be between ", lo, " and ", hi, ", got ", value);
}

void check_positive_finite(const std::string& source, std::string_view name, double value, bool allow_zero) {
  if (!std::isfinite(value) || value < 0.0 || (!allow_zero && value == 0.0)) {
    fail(source, ": ", name, " must be ", allow_zero ? "finite and >= 0" : "finite and > 0", ", got ", value);
  }
}

}  // namespace

JetMoeConfig parse_config_json(const std::string& text, const std::string& source) {
  const json root = parse_json_strict(text, source, "config");
  if (!root.is_object()) fail(source, ": config must be a JSON object, got ", json_type_phrase(root));
  const ConfigReader reader(root, source);
  check_fixed_choices(reader);
  if (root.contains("rope_scaling") && !root["rope_scaling"].is_null()) {
    fail(source, ": rope_scaling is not supported (JetMoE uses plain RoPE)");
  }

  JetMoeConfig config;
  config.vocab_size = reader.require_size(kVocabSize);
  config.hidden_size = reader.require_size(kHiddenSize);
  config.num_layers = reader.require_size(kNumLayers);
  config.num_experts = reader.require_size(kNumExperts);
  config.top_k = reader.require_size(kTopK);
  config.head_dim = reader.require_size(kHeadDim);
  config.intermediate_size = reader.require_size(kIntermediate);
  config.num_kv_heads = resolve_kv_heads(reader, config.top_k);

  config.max_position_embeddings = reader.find_or<int64_t>(kMaxPositions, config.max_position_embeddings);
  config.rope_theta = reader.find_or<double>(kRopeTheta, config.rope_theta);
  config.rms_norm_eps = reader.find_or<double>(kRmsNormEps, config.rms_norm_eps);
  config.initializer_range = reader.find_or<double>(kInitRange, config.initializer_range);
  config.aux_loss_coef = reader.find_or<double>(kAuxLossCoef, config.aux_loss_coef);
  config.tie_word_embeddings = reader.find_or<bool>(kTieEmbeddings, config.tie_word_embeddings);
  config.bos_token_id = reader.find_or<int64_t>(kBosId, config.bos_token_id);
  config.eos_token_id = reader.find_or<int64_t>(kEosId, config.eos_token_id);
  config.torch_dtype = parse_torch_dtype(reader);

  validate_config(config, source);
  return config;
}

JetMoeConfig load_config(const std::string& path) { return parse_config_json(read_text_file(path), path); }

void validate_config(const JetMoeConfig& c, const std::string& source) {
  // Upper bounds keep every parameter count and byte size of the model inside int64 (the
  // largest product, layers x experts x 2 x kv_heads x head_dim x hidden, stays below 2^60).
  check_range(source, "vocab_size", c.vocab_size, 1, int64_t(1) << 24);
  check_range(source, "hidden_size", c.hidden_size, 1, int64_t(1) << 16);
  check_range(source, "num_hidden_layers", c.num_layers, 1, 1024);
  check_range(source, "num_local_experts", c.num_experts, 1, 1024);
  check_range(source, "num_experts_per_tok", c.top_k, 1, c.num_experts);
  check_range(source, "num_key_value_heads", c.num_kv_heads, 1, 1024);
  check_range(source, "kv_channels", c.head_dim, 2, 4096);
  if (c.head_dim % 2 != 0) fail(source, ": kv_channels must be even for rotate-half RoPE, got ", c.head_dim);
  check_range(source, "intermediate_size", c.intermediate_size, 1, int64_t(1) << 20);
  check_range(source, "max_position_embeddings", c.max_position_embeddings, 1, int64_t(1) << 24);
  check_range(source, "bos_token_id", c.bos_token_id, 0, c.vocab_size - 1);
  check_range(source, "eos_token_id", c.eos_token_id, 0, c.vocab_size - 1);
  check_positive_finite(source, "rope_theta", c.rope_theta, false);
  check_positive_finite(source, "rms_norm_eps", c.rms_norm_eps, false);
  check_positive_finite(source, "initializer_range", c.initializer_range, true);
  check_positive_finite(source, "aux_loss_coef", c.aux_loss_coef, true);
}

std::string config_to_json(const JetMoeConfig& c) {
  validate_config(c, "config_to_json");
  const char* dtype = c.torch_dtype == DType::F32 ? "float32" : c.torch_dtype == DType::F16 ? "float16" : "bfloat16";
  json out = {
      {"architectures", {"JetMoeForCausalLM"}},
      {"model_type", "jetmoe"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"num_hidden_layers", c.num_layers},
      {"num_local_experts", c.num_experts},
      {"num_experts_per_tok", c.top_k},
      {"num_key_value_heads", c.num_kv_heads},
      // Derived, written for readers that look for it; JetMoeConfig recomputes the same value.
      {"num_attention_heads", c.num_attention_heads()},
      {"kv_channels", c.head_dim},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rope_theta", c.rope_theta},
      {"rms_norm_eps", c.rms_norm_eps},
      {"initializer_range", c.initializer_range},
      {"aux_loss_coef", c.aux_loss_coef},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_id},
      {"torch_dtype", dtype},
      {"activation_function", "silu"},
      {"attention_dropout", 0.0},
      {"output_router_logits", false},
      {"use_cache", true},
  };
  return out.dump(2) + "\n";
}

}  // namespace jetmoe
