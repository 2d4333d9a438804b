#include "model/kv_cache.h"

#include "core/error.h"

namespace jetmoe {

KvCache::KvCache(const JetMoeConfig& config, int64_t capacity)
    : capacity_(capacity), row_size_(config.kv_proj_size()) {
  if (capacity <= 0) fail("KV cache capacity must be positive, got ", capacity);
  k_.resize(size_t(config.num_layers));
  v_.resize(size_t(config.num_layers));
  for (auto& layer : k_) layer.assign(size_t(capacity * row_size_), 0.0f);
  for (auto& layer : v_) layer.assign(size_t(capacity * row_size_), 0.0f);
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) fail("KV cache truncate to ", n, " outside [0, ", length_, "]");
  length_ = n;
}

size_t KvCache::bytes() const { return size_t(2 * k_.size()) * size_t(capacity_ * row_size_) * sizeof(float); }

}  // namespace jetmoe
