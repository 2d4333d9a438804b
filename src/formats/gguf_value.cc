// GGUF metadata values and the ggml tensor type ids.
#include <cstring>
#include <limits>

#include "core/error.h"
#include "formats/gguf.h"

namespace jetmoe {

std::string_view gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::kUint8: return "uint8";
    case GgufType::kInt8: return "int8";
    case GgufType::kUint16: return "uint16";
    case GgufType::kInt16: return "int16";
    case GgufType::kUint32: return "uint32";
    case GgufType::kInt32: return "int32";
    case GgufType::kFloat32: return "float32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kUint64: return "uint64";
    case GgufType::kInt64: return "int64";
    case GgufType::kFloat64: return "float64";
  }
  return "unknown";
}

size_t gguf_type_size(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool: return 1;
    case GgufType::kUint16:
    case GgufType::kInt16: return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32: return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64: return 8;
    case GgufType::kString:
    case GgufType::kArray: return 0;
  }
  return 0;
}

namespace {

template <typename T>
GgufValue scalar(GgufType type, T value) {
  static_assert(sizeof(T) <= 8);
  GgufValue v;
  v.type = type;
  std::memcpy(&v.bits, &value, sizeof(T));  // little-endian host: the low bytes
  return v;
}

template <typename T>
T bits_as(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

}  // namespace

GgufValue GgufValue::of_u32(uint32_t v) { return scalar(GgufType::kUint32, v); }
GgufValue GgufValue::of_u64(uint64_t v) { return scalar(GgufType::kUint64, v); }
GgufValue GgufValue::of_i32(int32_t v) { return scalar(GgufType::kInt32, v); }
GgufValue GgufValue::of_f32(float v) { return scalar(GgufType::kFloat32, v); }
GgufValue GgufValue::of_f64(double v) { return scalar(GgufType::kFloat64, v); }
GgufValue GgufValue::of_bool(bool v) { return scalar(GgufType::kBool, uint8_t(v ? 1 : 0)); }

GgufValue GgufValue::of_string(std::string v) {
  GgufValue out;
  out.type = GgufType::kString;
  out.text = std::move(v);
  return out;
}

GgufValue GgufValue::of_packed(GgufType element, std::string packed) {
  const size_t size = gguf_type_size(element);
  JM_CHECK(size > 0 && packed.size() % size == 0, "packed array of ", gguf_type_name(element));
  GgufValue out;
  out.type = GgufType::kArray;
  out.array_type = element;
  out.array_size = packed.size() / size;
  out.packed = std::move(packed);
  return out;
}

GgufValue GgufValue::of_bytes(std::string_view bytes) { return of_packed(GgufType::kUint8, std::string(bytes)); }

GgufValue GgufValue::of_strings(std::vector<std::string> items) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.array_type = GgufType::kString;
  out.array_size = items.size();
  out.strings = std::move(items);
  return out;
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64: return true;
    default: return false;
  }
}

std::optional<int64_t> GgufValue::as_int() const {
  switch (type) {
    case GgufType::kUint8: return bits_as<uint8_t>(bits);
    case GgufType::kInt8: return bits_as<int8_t>(bits);
    case GgufType::kUint16: return bits_as<uint16_t>(bits);
    case GgufType::kInt16: return bits_as<int16_t>(bits);
    case GgufType::kUint32: return bits_as<uint32_t>(bits);
    case GgufType::kInt32: return bits_as<int32_t>(bits);
    case GgufType::kInt64: return bits_as<int64_t>(bits);
    case GgufType::kUint64:
      if (bits > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return int64_t(bits);
    default: return std::nullopt;
  }
}

std::optional<double> GgufValue::as_float() const {
  if (type == GgufType::kFloat32) return double(bits_as<float>(bits));
  if (type == GgufType::kFloat64) return bits_as<double>(bits);
  return std::nullopt;
}

std::optional<bool> GgufValue::as_bool() const {
  if (type != GgufType::kBool) return std::nullopt;
  return bits != 0;
}

std::string GgufValue::type_phrase() const {
  if (type != GgufType::kArray) return std::string(gguf_type_name(type));
  return str_cat("array of ", gguf_type_name(array_type));
}

// --- ggml tensor types ----------------------------------------------------------------------

namespace {

constexpr uint32_t kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8, kGgmlQ4_K = 12, kGgmlQ5_K = 13, kGgmlQ6_K = 14,
                   kGgmlBF16 = 30;

}  // namespace

uint32_t ggml_type_of(DType dtype) {
  switch (dtype) {
    case DType::F32: return kGgmlF32;
    case DType::F16: return kGgmlF16;
    case DType::BF16: return kGgmlBF16;
    case DType::Q8_0: return kGgmlQ8_0;
    case DType::Q4_0: return kGgmlQ4_0;
    case DType::Q4_K: return kGgmlQ4_K;
    case DType::Q5_K: return kGgmlQ5_K;
    case DType::Q6_K: return kGgmlQ6_K;
  }
  JM_CHECK(false, "dtype without a ggml type");
}

bool dtype_of_ggml_type(uint32_t ggml_type, DType* out) {
  switch (ggml_type) {
    case kGgmlF32: *out = DType::F32; return true;
    case kGgmlF16: *out = DType::F16; return true;
    case kGgmlBF16: *out = DType::BF16; return true;
    case kGgmlQ8_0: *out = DType::Q8_0; return true;
    case kGgmlQ4_0: *out = DType::Q4_0; return true;
    case kGgmlQ4_K: *out = DType::Q4_K; return true;
    case kGgmlQ5_K: *out = DType::Q5_K; return true;
    case kGgmlQ6_K: *out = DType::Q6_K; return true;
    default: return false;
  }
}

std::string_view ggml_type_name(uint32_t ggml_type) {
  // Ids 4 and 5 (Q4_2, Q4_3) were removed from ggml; 31-33 were Q4_0_4_4-style repackings, also removed.
  static constexpr std::string_view kNames[] = {
      "F32",    "F16",   "Q4_0",    "Q4_1",   "Q4_2", "Q4_3",   "Q5_0",  "Q5_1",   "Q8_0",  "Q8_1",   "Q2_K",
      "Q3_K",   "Q4_K",  "Q5_K",    "Q6_K",   "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
      "IQ2_S",  "IQ4_XS", "I8",     "I16",    "I32",  "I64",    "F64",   "IQ1_M",  "BF16",  "Q4_0_4_4", "Q4_0_4_8",
      "Q4_0_8_8", "TQ1_0", "TQ2_0",
  };
  if (ggml_type < std::size(kNames)) return kNames[ggml_type];
  if (ggml_type == 39) return "MXFP4";
  return "unknown";
}

}  // namespace jetmoe
