// KV cache for incremental decoding: post-RoPE K and V of the H shared KV heads only
// (spec §1.6): per token per layer 2*H*D values, nothing more. The values are float32 (the
// default: exact) or float16 (half the memory, and half the bytes decoding reads per cached
// position; K and V are rounded to nearest even as they are stored).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "formats/hf_config.h"
#include "kernels/ops.h"

namespace jetmoe {

// The element types a cache can hold: DType::F32 or DType::F16.
bool is_kv_cache_type(DType type);
// Parses "f32" / "F32" / "f16" / "F16"; false for anything else.
bool parse_kv_cache_type(std::string_view name, DType* out);
// The CLI spelling of a cache type: "f32" or "f16" (a C string, for printf and JSON alike).
const char* kv_cache_type_name(DType type);
// Bytes one cached position takes in every layer's K and V rows: 2 x layers x H x D values.
size_t kv_cache_bytes_per_position(const JetMoeConfig& config, DType type);

class KvCache {
 public:
  KvCache(const JetMoeConfig& config, int64_t capacity, DType type = DType::F32);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t layers() const { return int64_t(k_.size()); }
  DType type() const { return type_; }
  // Whether this cache has the layers and KV row width of `config`'s model.
  bool fits(const JetMoeConfig& config) const {
    return layers() == config.num_layers && row_size_ == config.kv_proj_size();
  }
  void clear() { length_ = 0; }
  // Drops everything from position `n` on (e.g. to reuse a shared prompt prefix).
  void truncate(int64_t n);

  // Layer `layer`'s [capacity, H*D] rows of type(); row p holds position p.
  ops::KvRows rows(int64_t layer) const { return {k_[size_t(layer)].data(), v_[size_t(layer)].data(), type_}; }
  // Stores position p's K and V of layer `layer` (H*D floats each), rounded to type().
  void store(int64_t layer, int64_t p, const float* key, const float* value);
  // The rows of a float32 cache (an Error for another type).
  const float* f32_keys(int64_t layer) const;
  const float* f32_values(int64_t layer) const;

  int64_t row_size() const { return row_size_; }
  size_t bytes() const;

  // Called by the forward pass after it appended `n` positions to every layer.
  void advance(int64_t n) { length_ += n; }

 private:
  int64_t capacity_;
  int64_t row_size_;
  DType type_;
  int64_t length_ = 0;
  std::vector<std::vector<std::byte>> k_, v_;
};

}  // namespace jetmoe
