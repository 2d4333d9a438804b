// JetMoE in GGUF (architecture "jetmoe"; docs/gguf.md is the reference): the llama.cpp-style
// tensor names and their HF counterparts, the metadata keys that carry the config and the
// tokenizer, and which dtype each tensor is stored in for a requested file type.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "formats/gguf.h"
#include "formats/gguf_file_type.h"
#include "formats/hf_config.h"

namespace jetmoe {

inline constexpr std::string_view kGgufArchitecture = "jetmoe";

// "model.layers.3.mlp.router.layer.weight" <-> "blk.3.ffn_gate_inp.weight"; nullopt for a name
// that is not a JetMoE parameter.
std::optional<std::string> gguf_tensor_name(std::string_view hf_name);
std::optional<std::string> hf_tensor_name(std::string_view gguf_name);

// What a tensor is, for the choice of its stored dtype. The K/V projection (shared by a layer's
// attention experts) and the experts' down projections are matrices that _M files may widen.
enum class TensorRole { kEmbedding, kHead, kNorm, kBias, kRouter, kMatrix, kKvProjection, kExpertDown };
// The role of an HF parameter name (one that gguf_tensor_name maps).
TensorRole tensor_role(std::string_view hf_name);

// Where a tensor sits: its role, and for a layer's tensor, layer `layer` of `layers`.
struct TensorPlace {
  TensorRole role;
  int64_t layer = 0;
  int64_t layers = 1;
  TensorPlace(TensorRole r, int64_t l = 0, int64_t n = 1) : role(r), layer(l), layers(n) {}  // NOLINT(implicit)
};
// The place of an HF parameter name (one that gguf_tensor_name maps) in a model of `layers` layers.
TensorPlace tensor_place(std::string_view hf_name, int64_t layers);

// llama.cpp's choice of the layers whose attn_v and ffn_down an _M file widens: the first and
// last eighth, and every third layer between.
bool gets_more_bits(int64_t layer, int64_t layers);

// The dtype a tensor is stored as in a file of type `requested`:
// - norms, biases and routers stay F32;
// - the output head (and the embedding when it is tied to the head) is Q6_K in a _M file, and
//   Q8_0 in a Q4_0, Q4_K_S or Q5_K_S file (llama.cpp likewise keeps the head at higher precision);
// - in a _M file, the K/V projection and the expert down projections of the layers
//   gets_more_bits picks are Q6_K (JetMoE's shared K/V projection in the place of attn_v);
// - everything else is `requested.weights`.
// In a k-quant file, a matrix whose rows are not a multiple of 256 is Q8_0. A tensor whose rows are
// not a multiple of the quantization block (32) keeps its `source` dtype (F32 when the source is
// itself quantized).
DType gguf_storage_dtype(const TensorPlace& place, GgufFileType requested, int64_t row_length, DType source,
                         bool tied_embeddings);

// The general.* and jetmoe.* keys for `config`, plus tokenizer.ggml.bos/eos_token_id, in the
// order docs/gguf.md lists them. `name` goes to general.name; `requested` to general.file_type.
void add_jetmoe_metadata(GgufWriter& writer, const JetMoeConfig& config, const std::string& name,
                         GgufFileType requested);
// The file's general.file_type by llama.cpp's name ("Q4_K_M"), "id N" for a number jetmoe does not
// write, "" when the key is absent or not an integer (a label: nothing is refused for it).
std::string gguf_file_type_label(const GgufFile& file);
// The config a GGUF file describes, validated like a config.json (validate_config). Throws an
// Error naming the file and the key that is missing, mistyped or inconsistent.
JetMoeConfig config_from_gguf(const GgufFile& file);

// Tokenizer files carried inside a GGUF file, so that one file is a complete model.
inline constexpr std::string_view kGgufHfTokenizerKey = "tokenizer.huggingface.json";   // string
inline constexpr std::string_view kGgufSpmTokenizerKey = "tokenizer.sentencepiece.model";  // array of uint8
inline constexpr std::string_view kGgufChatTemplateKey = "tokenizer.chat_template";     // string

struct GgufTokenizerData {
  std::string hf_json;        // tokenizer.json contents; "" when absent
  std::string spm_model;      // SentencePiece tokenizer.model bytes; "" when absent
  std::string chat_template;  // a Jinja template; "" when absent
};
void add_tokenizer_metadata(GgufWriter& writer, const GgufTokenizerData& data);
// Throws naming the file and key when a key is present with the wrong type.
GgufTokenizerData tokenizer_data_from_gguf(const GgufFile& file);

}  // namespace jetmoe
