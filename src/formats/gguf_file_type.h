// The file types `jetmoe quantize --type` writes, named and numbered as llama.cpp's llama_ftype:
// one dtype for the weight matrices (Q8_0, Q4_K_S, ...), or a "medium" mix (Q4_K_M, Q5_K_M) that
// gives the tensors most sensitive to rounding Q6_K (gguf_storage_dtype says which).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/dtype.h"

namespace jetmoe {

enum class QuantMix : uint8_t {
  kUniform,  // every matrix in `weights` (save the head, and rows that do not fit its blocks)
  kMedium,   // llama.cpp's _M: Q6_K for the head and, in some layers, the K/V projection and expert down projection
};

struct GgufFileType {
  DType weights = DType::Q8_0;
  QuantMix mix = QuantMix::kUniform;

  constexpr GgufFileType() = default;
  // A uniform file type: `--type q8_0` is the dtype Q8_0.
  constexpr GgufFileType(DType w, QuantMix m = QuantMix::kUniform) : weights(w), mix(m) {}  // NOLINT(implicit)
  friend constexpr bool operator==(const GgufFileType&, const GgufFileType&) = default;
};

inline constexpr GgufFileType kQ4KMedium{DType::Q4_K, QuantMix::kMedium};
inline constexpr GgufFileType kQ5KMedium{DType::Q5_K, QuantMix::kMedium};

// "q4_k_m", "Q4_K_M", "q4_k" (= "q4_k_s"), "q8_0", "f16", ... (any case); nullopt for anything else,
// including a mix of a type that has none (only Q4_K and Q5_K do).
std::optional<GgufFileType> parse_gguf_file_type(std::string_view text);

// llama.cpp's name: "Q4_K_M", "Q4_K_S" (uniform Q4_K), "Q6_K", "Q8_0", "BF16", ...
std::string gguf_file_type_name(GgufFileType type);

// general.file_type: llama.cpp's llama_ftype number.
uint32_t gguf_file_type_id(GgufFileType type);
// The file type of a general.file_type number, when it is one `jetmoe quantize` writes.
std::optional<GgufFileType> gguf_file_type_of_id(int64_t id);

}  // namespace jetmoe
