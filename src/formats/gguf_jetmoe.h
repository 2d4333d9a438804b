// JetMoE in GGUF (architecture "jetmoe"; docs/gguf.md is the reference): the llama.cpp-style
// tensor names and their HF counterparts, the metadata keys that carry the config and the
// tokenizer, and which dtype each tensor is stored in for a requested file type.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"

namespace jetmoe {

inline constexpr std::string_view kGgufArchitecture = "jetmoe";

// "model.layers.3.mlp.router.layer.weight" <-> "blk.3.ffn_gate_inp.weight"; nullopt for a name
// that is not a JetMoE parameter.
std::optional<std::string> gguf_tensor_name(std::string_view hf_name);
std::optional<std::string> hf_tensor_name(std::string_view gguf_name);

// What a tensor is, for the choice of its stored dtype.
enum class TensorRole { kEmbedding, kHead, kNorm, kBias, kRouter, kMatrix };
// The role of an HF parameter name (one that gguf_tensor_name maps).
TensorRole tensor_role(std::string_view hf_name);

// The dtype `requested` (the file type) stores a tensor as: norms, biases and routers stay F32;
// the output head — and the embedding when it is tied to the head — is Q8_0 in a Q4_0, Q4_K or
// Q5_K file (llama.cpp likewise keeps the head at higher precision); everything else is
// `requested`. In a k-quant file, a matrix whose rows are not a multiple of 256 is Q8_0. A tensor whose rows are
// not a multiple of the quantization block (32) keeps its `source` dtype (F32 when the source is
// itself quantized).
DType gguf_storage_dtype(TensorRole role, DType requested, int64_t row_length, DType source, bool tied_embeddings);

// general.file_type (llama.cpp's llama_ftype) of a requested file type.
uint32_t gguf_file_type(DType requested);

// The general.* and jetmoe.* keys for `config`, plus tokenizer.ggml.bos/eos_token_id, in the
// order docs/gguf.md lists them. `name` goes to general.name; `requested` to general.file_type.
void add_jetmoe_metadata(GgufWriter& writer, const JetMoeConfig& config, const std::string& name, DType requested);
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
