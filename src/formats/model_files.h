// A model as the user names it (-m PATH): a checkpoint directory in the Hugging Face layout
// (config.json, safetensors, tokenizer.json or tokenizer.model) or one GGUF file that carries all
// of that (docs/gguf.md). Everything that accepts a model opens it through here.
#pragma once

#include <string>

#include "formats/checkpoint.h"
#include "formats/gguf_jetmoe.h"
#include "formats/hf_config.h"
#include "formats/tokenizer/tokenizer.h"

namespace jetmoe {

struct ModelFiles {
  std::string path;
  bool is_gguf = false;
  JetMoeConfig config;
  TensorStore store;  // HF tensor names; a GGUF store keeps the file's map alive
  // A GGUF file's type by llama.cpp's name ("Q4_K_M", gguf_file_type_label); "" for a directory.
  std::string file_type;
};

// A directory is read in the HF layout (config.json + safetensors); a file must be a GGUF model.
// Throws naming the path and the problem.
ModelFiles open_model_files(const std::string& path);

// Whether the model carries a tokenizer: tokenizer.json or tokenizer.model in a directory,
// tokenizer.huggingface.json or tokenizer.sentencepiece.model in a GGUF file.
bool model_has_tokenizer(const std::string& path);

// The tokenizer of a model directory or GGUF file (tokenizer.json preferred, as in a directory);
// any other PATH goes to Tokenizer::load (a tokenizer.json or tokenizer.model file).
Tokenizer load_model_tokenizer(const std::string& path);

// The tokenizer files and chat template a model carries, as bytes, to embed in another file. For a
// directory: tokenizer.json (else tokenizer.model) and the chat template of chat_template.jinja or
// of tokenizer_config.json's "chat_template" string.
GgufTokenizerData read_model_tokenizer_data(const std::string& path);

}  // namespace jetmoe
