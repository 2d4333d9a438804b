#include "formats/gguf_file_type.h"

#include <cctype>

#include "core/error.h"

namespace jetmoe {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool has_mixes(DType t) { return t == DType::Q4_K || t == DType::Q5_K; }

}  // namespace

std::optional<GgufFileType> parse_gguf_file_type(std::string_view text) {
  std::string name = lower(text);
  QuantMix mix = QuantMix::kUniform;
  const bool medium = name.ends_with("_k_m"), small = name.ends_with("_k_s");
  if (medium || small) name.resize(name.size() - 2);  // "q4_k_m" -> "q4_k"
  if (medium) mix = QuantMix::kMedium;
  DType type;
  if (!parse_quant_dtype(name, &type) && !parse_dtype(name, &type)) return std::nullopt;
  if ((medium || small) && !has_mixes(type)) return std::nullopt;  // no "q6_k_m"
  return GgufFileType{type, mix};
}

std::string gguf_file_type_name(GgufFileType type) {
  std::string name(dtype_name(type.weights));
  if (has_mixes(type.weights)) name += type.mix == QuantMix::kMedium ? "_M" : "_S";
  return name;
}

uint32_t gguf_file_type_id(GgufFileType type) {
  const bool medium = type.mix == QuantMix::kMedium;
  JM_CHECK(!medium || has_mixes(type.weights), "no medium mix of ", dtype_name(type.weights));
  switch (type.weights) {
    case DType::F32: return 0;   // ALL_F32
    case DType::F16: return 1;   // MOSTLY_F16
    case DType::Q4_0: return 2;  // MOSTLY_Q4_0
    case DType::Q8_0: return 7;  // MOSTLY_Q8_0
    case DType::Q4_K: return medium ? 15 : 14;  // MOSTLY_Q4_K_M / _S
    case DType::Q5_K: return medium ? 17 : 16;  // MOSTLY_Q5_K_M / _S
    case DType::Q6_K: return 18; // MOSTLY_Q6_K
    case DType::BF16: return 32; // MOSTLY_BF16
  }
  JM_CHECK(false, "file type of an unknown dtype");
}

std::optional<GgufFileType> gguf_file_type_of_id(int64_t id) {
  for (const DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K,
                        DType::Q6_K}) {
    for (const QuantMix mix : {QuantMix::kUniform, QuantMix::kMedium}) {
      if (mix == QuantMix::kMedium && !has_mixes(t)) continue;
      if (gguf_file_type_id({t, mix}) == id) return GgufFileType{t, mix};
    }
  }
  return std::nullopt;
}

}  // namespace jetmoe
