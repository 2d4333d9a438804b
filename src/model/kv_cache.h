// KV cache for incremental decoding: post-RoPE K and V of the H shared KV heads only
// (spec §1.6): per token per layer 2*H*D floats, nothing more.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/hf_config.h"

namespace jetmoe {

class KvCache {
 public:
  KvCache(const JetMoeConfig& config, int64_t capacity);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t layers() const { return int64_t(k_.size()); }
  // Whether this cache has the layers and KV row width of `config`'s model.
  bool fits(const JetMoeConfig& config) const {
    return layers() == config.num_layers && row_size_ == config.kv_proj_size();
  }
  void clear() { length_ = 0; }
  // Drops everything from position `n` on (e.g. to reuse a shared prompt prefix).
  void truncate(int64_t n);

  // [capacity, H*D] rows of layer `layer`; row p holds position p.
  float* keys(int64_t layer) { return k_[size_t(layer)].data(); }
  float* values(int64_t layer) { return v_[size_t(layer)].data(); }
  const float* keys(int64_t layer) const { return k_[size_t(layer)].data(); }
  const float* values(int64_t layer) const { return v_[size_t(layer)].data(); }
  int64_t row_size() const { return row_size_; }
  size_t bytes() const;

  // Called by the forward pass after it appended `n` positions to every layer.
  void advance(int64_t n) { length_ += n; }

 private:
  int64_t capacity_;
  int64_t row_size_;
  int64_t length_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace jetmoe
