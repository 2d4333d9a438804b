// GGUF v3, the single-file container of GGML / llama.cpp (docs/gguf.md has our conventions):
//   "GGUF" | u32 version = 3 | u64 tensor count | u64 metadata count
//   metadata: key (u64 length + bytes), u32 value type, value (arrays: u32 element type, u64 count, elements)
//   tensor infos: name, u32 n_dims, u64 ne[n_dims] (ne[0] varies fastest), u32 ggml type, u64 offset
//   zero padding to general.alignment (default 32), then the data section; every tensor's offset
//   (relative to the data section) is a multiple of the alignment.
// All little-endian. The reader maps the file and hands out zero-copy views after validating
// everything a hostile file can lie about; every error names the file, the key or tensor and the
// problem. The writer lays out a file and writes it atomically.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace jetmoe {

inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint32_t kGgufDefaultAlignment = 32;

// Bounds on what a file may declare. The spec's own limits (key length, tensor name length, n_dims)
// and generous caps on counts, so a hostile header cannot make the reader allocate without bound.
inline constexpr uint64_t kGgufMaxKeyBytes = 65535;
inline constexpr uint64_t kGgufMaxTensorNameBytes = 63;  // GGML_MAX_NAME (64) with its terminating NUL
inline constexpr uint32_t kGgufMaxDims = 4;
inline constexpr uint64_t kGgufMaxStringBytes = uint64_t(1) << 28;  // 256 MiB (a tokenizer.json is ~2-10 MB)
inline constexpr uint64_t kGgufMaxTensors = uint64_t(1) << 20;
inline constexpr uint64_t kGgufMaxKeys = uint64_t(1) << 20;
inline constexpr uint64_t kGgufMaxArrayItems = uint64_t(1) << 24;  // strings and arrays held, over all metadata
inline constexpr int kGgufMaxArrayDepth = 4;                       // arrays nested in arrays
inline constexpr uint32_t kGgufMaxAlignment = uint32_t(1) << 20;

// Metadata value types, numbered as in the spec.
enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
std::string_view gguf_type_name(GgufType type);  // "uint32", "string", ...
// Bytes of one value of a fixed-size type; 0 for kString and kArray.
size_t gguf_type_size(GgufType type);

// One metadata value. Numbers and bools keep their exact bits; arrays of fixed-size elements are
// kept packed as in the file.
struct GgufValue {
  GgufType type = GgufType::kUint32;
  uint64_t bits = 0;     // a number or bool: its little-endian bytes, zero-extended to 64 bits
  std::string text;      // kString
  // kArray: element type and count; numbers and bools packed little-endian in `packed`, strings in
  // `strings`, nested arrays in `arrays`.
  GgufType array_type = GgufType::kUint8;
  uint64_t array_size = 0;
  std::string packed;
  std::vector<std::string> strings;
  std::vector<GgufValue> arrays;

  static GgufValue of_u32(uint32_t v);
  static GgufValue of_u64(uint64_t v);
  static GgufValue of_i32(int32_t v);
  static GgufValue of_f32(float v);
  static GgufValue of_f64(double v);
  static GgufValue of_bool(bool v);
  static GgufValue of_string(std::string v);
  static GgufValue of_bytes(std::string_view bytes);  // an array of uint8
  static GgufValue of_strings(std::vector<std::string> items);
  // An array of fixed-size elements given as packed little-endian bytes (size a multiple of the element's).
  static GgufValue of_packed(GgufType element, std::string packed);

  bool is_integer() const;  // any of the eight integer types
  // The value of an integer type, if it fits in int64; nullopt for other types or out of range.
  std::optional<int64_t> as_int() const;
  std::optional<double> as_float() const;  // float32 or float64
  std::optional<bool> as_bool() const;
  // "uint32", "array of string", ... for messages.
  std::string type_phrase() const;
};

// ggml tensor type ids of the dtypes jetmoe.cpp computes with.
uint32_t ggml_type_of(DType dtype);
// The DType of a ggml type id; false for ids jetmoe.cpp does not read.
bool dtype_of_ggml_type(uint32_t ggml_type, DType* out);
// "Q4_K" for a known ggml id, "unknown" otherwise (for messages).
std::string_view ggml_type_name(uint32_t ggml_type);

struct GgufTensor {
  std::string name;
  TensorView view;      // shape in row-major (PyTorch) order: ne reversed; data inside the map
  uint32_t ggml_type = 0;
  uint64_t offset = 0;  // relative to the data section
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

class GgufFile {
 public:
  // Maps and validates the whole file; throws jetmoe::Error on any malformed input.
  explicit GgufFile(const std::string& path);
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return file_.path(); }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // where the data section starts in the file
  const std::vector<GgufKeyValue>& metadata() const { return metadata_; }  // in file order
  const GgufValue* find(std::string_view key) const;
  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // in file order

 private:
  MappedFile file_;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> metadata_;
  std::map<std::string, size_t, std::less<>> key_index_;
  std::vector<GgufTensor> tensors_;
};

// True when `path` is a regular file that starts with the GGUF magic.
bool looks_like_gguf(const std::string& path);

// Builds a GGUF file: metadata in the order given, tensors laid out in the order given, each at an
// offset that is a multiple of the alignment. general.alignment, if set, must be the writer's
// alignment as a uint32 (without it, readers assume 32).
class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment);

  uint32_t alignment() const { return alignment_; }
  // Throws on an invalid key (empty, over 65535 bytes, not printable ASCII) or one set twice.
  void set(std::string key, GgufValue value);
  // `fill` writes the tensor's bytes (dtype_bytes(dtype, numel)) into the buffer it is given;
  // it is called once, while write() runs, so conversions happen one tensor at a time.
  using FillBytes = std::function<void(unsigned char* out)>;
  void add_tensor(std::string name, DType dtype, Shape shape, FillBytes fill);
  // A tensor written as its view's bytes are; the memory must stay valid until write() returns.
  void add_tensor(std::string name, const TensorView& view);

  // Writes the file atomically (temporary file, then rename); returns its size in bytes.
  uint64_t write(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t bytes;
    FillBytes fill;
    const void* data;  // when written as is
  };
  void check_tensor(const std::string& name, DType dtype, const Shape& shape) const;

  uint32_t alignment_;
  std::vector<GgufKeyValue> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace jetmoe
