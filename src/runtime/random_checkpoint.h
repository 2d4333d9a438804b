// A randomly initialized JetMoE checkpoint in the Hugging Face layout, for tests, benchmarks
// and training from scratch: every tensor param_specs() names, initialized as HF does
// (normal(0, initializer_range) for weights, zeros for biases, ones for norms).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/hf_config.h"

namespace jetmoe {

struct RandomCheckpointOptions {
  uint64_t seed = 0;
  DType dtype = DType::BF16;     // stored dtype; also written as torch_dtype in config.json
  size_t max_shard_bytes = 0;    // 0: one model.safetensors (built in memory whole)
  std::string tokenizer;         // tokenizer file or directory to copy in (as tokenizer.json/.model); "" = none
  bool overwrite = false;        // write into a non-empty directory
};

// The values of one parameter, as float32, in param_specs() order; deterministic from the
// seed and the same on every platform (own generator and Box-Muller, no std distributions).
std::vector<std::vector<float>> random_parameter_values(const JetMoeConfig& config, uint64_t seed);

// Writes `dir`: model.safetensors (or shards + index), config.json, generation_config.json
// and the tokenizer if given. Refuses a non-empty `dir` unless options.overwrite.
void write_random_checkpoint(const JetMoeConfig& config, const std::string& dir,
                             const RandomCheckpointOptions& options);

}  // namespace jetmoe
