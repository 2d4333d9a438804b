// GGUF bytes written field by field straight from the spec (ggml docs/gguf.md), independently of
// jetmoe.cpp's GgufWriter: the reader's tests and the writer's expected output are built with it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe::testing {

// Value type ids of the spec.
enum GgufTypeId : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9,
  kU64 = 10, kI64 = 11, kF64 = 12,
};
// ggml tensor type ids.
enum GgmlTypeId : uint32_t {
  kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8, kGgmlQ3_K = 11, kGgmlQ4_K = 12, kGgmlBF16 = 30
};

class GgufBytes {
 public:
  template <typename T>
  GgufBytes& put(T value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));  // the tests run on little-endian machines only
    out_.append(bytes, sizeof(T));
    return *this;
  }
  GgufBytes& u8(uint8_t v) { return put(v); }
  GgufBytes& u32(uint32_t v) { return put(v); }
  GgufBytes& u64(uint64_t v) { return put(v); }
  GgufBytes& raw(std::string_view bytes) {
    out_.append(bytes);
    return *this;
  }
  // gguf_string_t: u64 length, then the bytes.
  GgufBytes& str(std::string_view s) { return u64(s.size()).raw(s); }

  // "GGUF", version, tensor count, metadata count.
  GgufBytes& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    return raw("GGUF").u32(version).u64(tensors).u64(kvs);
  }
  // A key and the value type; the caller appends the value.
  GgufBytes& key(std::string_view k, uint32_t type) { return str(k).u32(type); }
  GgufBytes& kv_u32(std::string_view k, uint32_t v) { return key(k, kU32).u32(v); }
  GgufBytes& kv_str(std::string_view k, std::string_view v) { return key(k, kString).str(v); }
  // Tensor info: name, n_dims, ne[] (ne[0] fastest), ggml type, offset in the data section.
  GgufBytes& tensor(std::string_view name, const std::vector<uint64_t>& ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  GgufBytes& pad_to(size_t alignment) {
    out_.append((alignment - out_.size() % alignment) % alignment, '\0');
    return *this;
  }

  const std::string& bytes() const { return out_; }
  size_t size() const { return out_.size(); }

 private:
  std::string out_;
};

}  // namespace jetmoe::testing
