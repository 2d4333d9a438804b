#include "formats/gguf_jetmoe.h"

#include <utility>

#include "core/error.h"

namespace jetmoe {

namespace {

// --- tensor names -----------------------------------------------------------------------------

struct NamePair {
  std::string_view hf;
  std::string_view gguf;
  TensorRole role;
};

constexpr NamePair kModelNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight", TensorRole::kEmbedding},
    {"model.norm.weight", "output_norm.weight", TensorRole::kNorm},
    {"lm_head.weight", "output.weight", TensorRole::kHead},
};

// Names inside layer N: "model.layers.N." + hf <-> "blk.N." + gguf.
constexpr std::string_view kHfLayerPrefix = "model.layers.";
constexpr std::string_view kGgufLayerPrefix = "blk.";
constexpr NamePair kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight", TensorRole::kNorm},
    {"self_attention.experts.router.layer.weight", "attn_gate_inp.weight", TensorRole::kRouter},
    {"self_attention.experts.input_linear.weight", "attn_q_exps.weight", TensorRole::kMatrix},
    {"self_attention.experts.output_linear.weight", "attn_output_exps.weight", TensorRole::kMatrix},
    {"self_attention.experts.bias", "attn_output.bias", TensorRole::kBias},
    {"self_attention.kv_proj.weight", "attn_kv.weight", TensorRole::kKvProjection},
    {"post_attention_layernorm.weight", "ffn_norm.weight", TensorRole::kNorm},
    {"mlp.router.layer.weight", "ffn_gate_inp.weight", TensorRole::kRouter},
    {"mlp.input_linear.weight", "ffn_gate_up_exps.weight", TensorRole::kMatrix},
    {"mlp.output_linear.weight", "ffn_down_exps.weight", TensorRole::kExpertDown},
    {"mlp.bias", "ffn_down.bias", TensorRole::kBias},
};

// "model.layers.12.mlp.bias" with prefix "model.layers." -> {"12", "mlp.bias"}. The layer must be
// written canonically ("12", not "012") so that the mapping is one to one.
std::optional<std::pair<std::string_view, std::string_view>> split_layer(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return std::nullopt;
  const std::string_view rest = name.substr(prefix.size());
  const size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view digits = rest.substr(0, dot);
  if (digits.empty() || digits.size() > 9 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  for (const char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return std::pair{digits, rest.substr(dot + 1)};
}

// The pair naming `name` on the side `side` picks (&NamePair::hf or &NamePair::gguf), with the layer.
struct Match {
  const NamePair* pair = nullptr;
  std::string_view layer;  // empty for a model-level tensor
};

Match find_name(std::string_view name, std::string_view NamePair::*side, std::string_view layer_prefix) {
  for (const NamePair& pair : kModelNames) {
    if (pair.*side == name) return {&pair, {}};
  }
  if (const auto split = split_layer(name, layer_prefix)) {
    for (const NamePair& pair : kLayerNames) {
      if (pair.*side == split->second) return {&pair, split->first};
    }
  }
  return {};
}

std::optional<std::string> translate(std::string_view name, std::string_view NamePair::*from, std::string_view from_prefix,
                                     std::string_view NamePair::*to, std::string_view to_prefix) {
  const Match match = find_name(name, from, from_prefix);
  if (!match.pair) return std::nullopt;
  if (match.layer.empty()) return std::string(match.pair->*to);
  return str_cat(to_prefix, match.layer, ".", match.pair->*to);
}

// --- metadata keys ----------------------------------------------------------------------------

constexpr const char* kArchitecture = "general.architecture";
constexpr const char* kName = "general.name";
constexpr const char* kAlignment = "general.alignment";
constexpr const char* kFileType = "general.file_type";
constexpr const char* kQuantizationVersion = "general.quantization_version";
constexpr uint32_t kGgmlQuantizationVersion = 2;  // GGML_QNT_VERSION: the current Q4_0 / Q8_0 / k-quant layouts

constexpr const char* kVocabSize = "jetmoe.vocab_size";
constexpr const char* kContextLength = "jetmoe.context_length";
constexpr const char* kEmbeddingLength = "jetmoe.embedding_length";
constexpr const char* kBlockCount = "jetmoe.block_count";
constexpr const char* kFeedForwardLength = "jetmoe.feed_forward_length";
constexpr const char* kExpertCount = "jetmoe.expert_count";
constexpr const char* kExpertUsedCount = "jetmoe.expert_used_count";
constexpr const char* kHeadCount = "jetmoe.attention.head_count";
constexpr const char* kHeadCountKv = "jetmoe.attention.head_count_kv";
constexpr const char* kKeyLength = "jetmoe.attention.key_length";
constexpr const char* kValueLength = "jetmoe.attention.value_length";
constexpr const char* kRmsEpsilon = "jetmoe.attention.layer_norm_rms_epsilon";
constexpr const char* kRopeDimensions = "jetmoe.rope.dimension_count";
constexpr const char* kRopeFreqBase = "jetmoe.rope.freq_base";
constexpr const char* kTieEmbeddings = "jetmoe.tie_word_embeddings";
constexpr const char* kInitializerRange = "jetmoe.initializer_range";
constexpr const char* kAuxLossCoef = "jetmoe.aux_loss_coef";
constexpr const char* kTorchDtype = "jetmoe.torch_dtype";
constexpr const char* kBosId = "tokenizer.ggml.bos_token_id";
constexpr const char* kEosId = "tokenizer.ggml.eos_token_id";

const char* torch_dtype_name(DType dtype) {
  return dtype == DType::F32 ? "float32" : dtype == DType::F16 ? "float16" : "bfloat16";
}

// Typed reads of metadata; every message names the file and the key.
class MetadataReader {
 public:
  explicit MetadataReader(const GgufFile& file) : file_(file) {}

  std::optional<int64_t> find_int(const char* key) const {
    const GgufValue* value = file_.find(key);
    if (!value) return std::nullopt;
    if (!value->is_integer()) fail(file_.path(), ": metadata '", key, "' must be an integer, got ", value->type_phrase());
    const std::optional<int64_t> number = value->as_int();
    if (!number) fail(file_.path(), ": metadata '", key, "' = ", value->bits, " is out of range");
    return number;
  }

  int64_t require_int(const char* key, const char* meaning) const {
    const std::optional<int64_t> value = find_int(key);
    if (!value) fail(file_.path(), ": missing metadata '", key, "' (", meaning, ")");
    return *value;
  }

  std::optional<double> find_float(const char* key) const {
    const GgufValue* value = file_.find(key);
    if (!value) return std::nullopt;
    const std::optional<double> number = value->as_float();
    if (!number) fail(file_.path(), ": metadata '", key, "' must be a float32 or float64, got ", value->type_phrase());
    return number;
  }

  std::optional<bool> find_bool(const char* key) const {
    const GgufValue* value = file_.find(key);
    if (!value) return std::nullopt;
    if (!value->as_bool()) fail(file_.path(), ": metadata '", key, "' must be a bool, got ", value->type_phrase());
    return value->as_bool();
  }

  std::optional<std::string> find_string(std::string_view key) const {
    const GgufValue* value = file_.find(key);
    if (!value) return std::nullopt;
    if (value->type != GgufType::kString) {
      fail(file_.path(), ": metadata '", key, "' must be a string, got ", value->type_phrase());
    }
    return value->text;
  }

  // Keys that restate a value the config holds elsewhere must agree with it.
  void check_same(const char* key, int64_t expected, const std::string& why) const {
    const std::optional<int64_t> value = find_int(key);
    if (value && *value != expected) fail(file_.path(), ": metadata '", key, "' is ", *value, " but ", why);
  }

 private:
  const GgufFile& file_;
};

DType parse_torch_dtype(const MetadataReader& reader, const std::string& path) {
  const std::optional<std::string> name = reader.find_string(kTorchDtype);
  if (!name) return DType::BF16;
  for (const DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    if (*name == torch_dtype_name(dtype)) return dtype;
  }
  fail(path, ": metadata '", kTorchDtype, "' is '", *name, "' (float32, bfloat16 or float16 expected)");
}

}  // namespace

std::optional<std::string> gguf_tensor_name(std::string_view hf_name) {
  return translate(hf_name, &NamePair::hf, kHfLayerPrefix, &NamePair::gguf, kGgufLayerPrefix);
}

std::optional<std::string> hf_tensor_name(std::string_view gguf_name) {
  return translate(gguf_name, &NamePair::gguf, kGgufLayerPrefix, &NamePair::hf, kHfLayerPrefix);
}

TensorRole tensor_role(std::string_view hf_name) { return tensor_place(hf_name, 1).role; }

TensorPlace tensor_place(std::string_view hf_name, int64_t layers) {
  const Match match = find_name(hf_name, &NamePair::hf, kHfLayerPrefix);
  JM_CHECK(match.pair != nullptr, "not a JetMoE tensor name: ", hf_name);
  int64_t layer = 0;
  for (const char c : match.layer) layer = 10 * layer + (c - '0');  // split_layer allows 9 digits at most
  return {match.pair->role, layer, layers};
}

bool gets_more_bits(int64_t layer, int64_t layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

DType gguf_storage_dtype(const TensorPlace& place, GgufFileType requested, int64_t row_length, DType source,
                         bool tied_embeddings) {
  const TensorRole role = place.role;
  if (role == TensorRole::kNorm || role == TensorRole::kBias || role == TensorRole::kRouter) return DType::F32;
  const bool medium = requested.mix == QuantMix::kMedium;
  DType wanted = requested.weights;
  const bool is_head = role == TensorRole::kHead || (role == TensorRole::kEmbedding && tied_embeddings);
  const bool below_six_bits = wanted == DType::Q4_0 || wanted == DType::Q4_K || wanted == DType::Q5_K;
  if (is_head && below_six_bits) wanted = medium ? DType::Q6_K : DType::Q8_0;
  const bool widened = role == TensorRole::kKvProjection || role == TensorRole::kExpertDown;
  if (medium && widened && gets_more_bits(place.layer, place.layers)) wanted = DType::Q6_K;
  // The k-quants need rows of whole 256-value super-blocks; other rows fall back to Q8_0's blocks of 32.
  if (dtype_is_k_quant(wanted) && row_length % kKQuantSuperBlock != 0) wanted = DType::Q8_0;
  if (row_length % dtype_block_elems(wanted) != 0) return dtype_is_quantized(source) ? DType::F32 : source;
  return wanted;
}

std::string gguf_file_type_label(const GgufFile& file) {
  const GgufValue* value = file.find(kFileType);
  const std::optional<int64_t> id = value ? value->as_int() : std::nullopt;
  if (!id) return "";
  const std::optional<GgufFileType> type = gguf_file_type_of_id(*id);
  return type ? gguf_file_type_name(*type) : str_cat("id ", *id);
}

void add_jetmoe_metadata(GgufWriter& writer, const JetMoeConfig& c, const std::string& name,
                         GgufFileType requested) {
  validate_config(c, "GGUF metadata");
  auto u32 = [](int64_t v) { return GgufValue::of_u32(uint32_t(v)); };  // validate_config bounds them
  writer.set(kArchitecture, GgufValue::of_string(std::string(kGgufArchitecture)));
  writer.set(kName, GgufValue::of_string(name));
  writer.set(kAlignment, GgufValue::of_u32(writer.alignment()));
  writer.set(kFileType, GgufValue::of_u32(gguf_file_type_id(requested)));
  if (dtype_is_quantized(requested.weights))
    writer.set(kQuantizationVersion, GgufValue::of_u32(kGgmlQuantizationVersion));

  writer.set(kVocabSize, u32(c.vocab_size));
  writer.set(kContextLength, u32(c.max_position_embeddings));
  writer.set(kEmbeddingLength, u32(c.hidden_size));
  writer.set(kBlockCount, u32(c.num_layers));
  writer.set(kFeedForwardLength, u32(c.intermediate_size));
  writer.set(kExpertCount, u32(c.num_experts));
  writer.set(kExpertUsedCount, u32(c.top_k));
  writer.set(kHeadCount, u32(c.num_attention_heads()));
  writer.set(kHeadCountKv, u32(c.num_kv_heads));
  writer.set(kKeyLength, u32(c.head_dim));
  writer.set(kValueLength, u32(c.head_dim));
  // float64, not the spec's usual float32: 1e-5 or an odd theta must come back bit for bit.
  writer.set(kRmsEpsilon, GgufValue::of_f64(c.rms_norm_eps));
  writer.set(kRopeDimensions, u32(c.head_dim));
  writer.set(kRopeFreqBase, GgufValue::of_f64(c.rope_theta));
  writer.set(kTieEmbeddings, GgufValue::of_bool(c.tie_word_embeddings));
  writer.set(kInitializerRange, GgufValue::of_f64(c.initializer_range));
  writer.set(kAuxLossCoef, GgufValue::of_f64(c.aux_loss_coef));
  writer.set(kTorchDtype, GgufValue::of_string(torch_dtype_name(c.torch_dtype)));
  writer.set(kBosId, u32(c.bos_token_id));
  writer.set(kEosId, u32(c.eos_token_id));
}

JetMoeConfig config_from_gguf(const GgufFile& file) {
  const std::string& path = file.path();
  const MetadataReader reader(file);
  const std::optional<std::string> architecture = reader.find_string(kArchitecture);
  if (!architecture) fail(path, ": missing metadata '", kArchitecture, "' (is this a model file?)");
  if (*architecture != kGgufArchitecture) {
    fail(path, ": ", kArchitecture, " is '", *architecture, "'; jetmoe.cpp runs only '", kGgufArchitecture, "' models");
  }

  JetMoeConfig c;
  c.vocab_size = reader.require_int(kVocabSize, "vocab_size");
  c.hidden_size = reader.require_int(kEmbeddingLength, "hidden_size");
  c.num_layers = reader.require_int(kBlockCount, "num_hidden_layers");
  c.num_experts = reader.require_int(kExpertCount, "num_local_experts");
  c.top_k = reader.require_int(kExpertUsedCount, "num_experts_per_tok");
  c.num_kv_heads = reader.require_int(kHeadCountKv, "num_key_value_heads");
  c.head_dim = reader.require_int(kKeyLength, "kv_channels");
  c.intermediate_size = reader.require_int(kFeedForwardLength, "intermediate_size per expert");
  c.max_position_embeddings = reader.require_int(kContextLength, "max_position_embeddings");
  c.rope_theta = reader.find_float(kRopeFreqBase).value_or(c.rope_theta);
  c.rms_norm_eps = reader.find_float(kRmsEpsilon).value_or(c.rms_norm_eps);
  c.tie_word_embeddings = reader.find_bool(kTieEmbeddings).value_or(c.tie_word_embeddings);
  c.initializer_range = reader.find_float(kInitializerRange).value_or(c.initializer_range);
  c.aux_loss_coef = reader.find_float(kAuxLossCoef).value_or(c.aux_loss_coef);
  c.bos_token_id = reader.find_int(kBosId).value_or(c.bos_token_id);
  c.eos_token_id = reader.find_int(kEosId).value_or(c.eos_token_id);
  c.torch_dtype = parse_torch_dtype(reader, path);
  validate_config(c, path);

  // Restated values (bounded by validate_config, so the products cannot overflow).
  reader.check_same(kHeadCount, c.num_attention_heads(),
                    str_cat("it must be head_count_kv x expert_used_count = ", c.num_attention_heads()));
  reader.check_same(kValueLength, c.head_dim, str_cat("JetMoE's values have key_length (", c.head_dim, ") channels"));
  reader.check_same(kRopeDimensions, c.head_dim, str_cat("RoPE covers the whole head (key_length ", c.head_dim, ")"));
  return c;
}

void add_tokenizer_metadata(GgufWriter& writer, const GgufTokenizerData& data) {
  if (!data.hf_json.empty()) writer.set(std::string(kGgufHfTokenizerKey), GgufValue::of_string(data.hf_json));
  if (!data.spm_model.empty()) writer.set(std::string(kGgufSpmTokenizerKey), GgufValue::of_bytes(data.spm_model));
  if (!data.chat_template.empty()) {
    writer.set(std::string(kGgufChatTemplateKey), GgufValue::of_string(data.chat_template));
  }
}

GgufTokenizerData tokenizer_data_from_gguf(const GgufFile& file) {
  const MetadataReader reader(file);
  GgufTokenizerData data;
  data.hf_json = reader.find_string(kGgufHfTokenizerKey).value_or("");
  data.chat_template = reader.find_string(kGgufChatTemplateKey).value_or("");
  if (const GgufValue* spm = file.find(kGgufSpmTokenizerKey)) {
    if (spm->type != GgufType::kArray || spm->array_type != GgufType::kUint8) {
      fail(file.path(), ": metadata '", kGgufSpmTokenizerKey, "' must be an array of uint8, got ", spm->type_phrase());
    }
    data.spm_model = spm->packed;
  }
  return data;
}

}  // namespace jetmoe
