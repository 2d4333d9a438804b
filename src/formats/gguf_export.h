// Writes a JetMoE model as one GGUF file (what `jetmoe quantize` does): the config as metadata,
// the tokenizer embedded, and each tensor converted to the dtype gguf_storage_dtype picks for
// the requested file type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "formats/checkpoint.h"
#include "formats/gguf_jetmoe.h"
#include "formats/hf_config.h"

namespace jetmoe {

struct GgufExportOptions {
  GgufFileType type;            // the file type: F32, F16, BF16, Q8_0, Q4_0, Q4_K_S/M, Q5_K_S/M or Q6_K
  std::string name;             // general.name
  GgufTokenizerData tokenizer;  // embedded as tokenizer.* metadata
};

// One tensor of the export: its GGUF name, shape and dtype before and after.
struct GgufExportTensor {
  std::string hf_name;
  std::string gguf_name;
  Shape shape;
  DType from;
  DType to;
  uint64_t bytes_before;
  uint64_t bytes_after;
};

// The plan for the tensors `hf_names` (in file order) of `store`; throws naming a tensor that is
// missing or not a JetMoE parameter.
std::vector<GgufExportTensor> plan_gguf_export(const JetMoeConfig& config, const TensorStore& store,
                                               const std::vector<std::string>& hf_names, GgufFileType type);

// Writes the plan to `path` atomically, converting on `pool`'s threads; returns the file size.
uint64_t write_gguf_export(const std::string& path, const JetMoeConfig& config, const TensorStore& store,
                           const std::vector<GgufExportTensor>& plan, const GgufExportOptions& options,
                           ThreadPool& pool);

// Converts every row of `src` to `to` (to_f32, then from_f32: quantized blocks never straddle
// rows); `out` holds dtype_bytes(to, src.numel()).
void convert_tensor(const TensorView& src, DType to, unsigned char* out, ThreadPool& pool);

}  // namespace jetmoe
