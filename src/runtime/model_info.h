// What `jetmoe info` reports about a checkpoint: its config, parameter counts, stored bytes by
// dtype and what the KV cache costs per token. Reads config.json and safetensors headers (or a
// GGUF file's header) only.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "formats/hf_config.h"
#include "model/weights.h"

namespace jetmoe {

struct ModelInfo {
  std::string dir;
  JetMoeConfig config;
  ParamCounts params;
  std::map<std::string, size_t> weight_bytes_by_dtype;  // "BF16" -> bytes
  std::map<std::string, int64_t> tensors_by_dtype;
  size_t kv_cache_bytes_per_token = 0;  // float32 K and V of the shared KV heads, all layers
  size_t kv_cache_bytes_per_token_f16 = 0;  // the same in a float16 cache (--cache-type f16)
  double bits_per_weight = 0;  // stored weight bits over parameters
  // A GGUF file's general.file_type, by llama.cpp's name ("Q4_K_M"), or "id N" for a number
  // jetmoe does not write; "" for a checkpoint directory or a file without the key.
  std::string file_type;
};

ModelInfo inspect_model(const std::string& dir);

// Human-readable, one fact per line.
std::string format_model_info(const ModelInfo& info);
// One JSON object (pretty-printed).
std::string model_info_json(const ModelInfo& info);

}  // namespace jetmoe
