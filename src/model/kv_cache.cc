#include "model/kv_cache.h"

#include "core/error.h"

namespace jetmoe {

bool is_kv_cache_type(DType type) { return type == DType::F32 || type == DType::F16; }

bool parse_kv_cache_type(std::string_view name, DType* out) {
  if (name == "f32" || name == "F32") *out = DType::F32;
  else if (name == "f16" || name == "F16") *out = DType::F16;
  else return false;
  return true;
}

const char* kv_cache_type_name(DType type) {
  JM_CHECK(is_kv_cache_type(type), "not a KV cache type: ", dtype_name(type));
  return type == DType::F16 ? "f16" : "f32";
}

size_t kv_cache_bytes_per_position(const JetMoeConfig& config, DType type) {
  JM_CHECK(is_kv_cache_type(type), "not a KV cache type: ", dtype_name(type));
  return size_t(2 * config.num_layers * config.kv_proj_size()) * dtype_size(type);
}

KvCache::KvCache(const JetMoeConfig& config, int64_t capacity, DType type)
    : capacity_(capacity), row_size_(config.kv_proj_size()), type_(type) {
  if (capacity <= 0) fail("KV cache capacity must be positive, got ", capacity);
  if (!is_kv_cache_type(type)) fail("KV cache type must be F32 or F16, got ", dtype_name(type));
  const size_t layer_bytes = size_t(capacity * row_size_) * dtype_size(type);
  k_.assign(size_t(config.num_layers), std::vector<std::byte>(layer_bytes));
  v_.assign(size_t(config.num_layers), std::vector<std::byte>(layer_bytes));
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) fail("KV cache truncate to ", n, " outside [0, ", length_, "]");
  length_ = n;
}

void KvCache::store(int64_t layer, int64_t p, const float* key, const float* value) {
  JM_CHECK(p >= 0 && p < capacity_, "KV cache position ", p, " outside [0, ", capacity_, ")");
  const size_t offset = size_t(p * row_size_) * dtype_size(type_);
  ops::store_kv_row(key, k_[size_t(layer)].data() + offset, type_, row_size_);
  ops::store_kv_row(value, v_[size_t(layer)].data() + offset, type_, row_size_);
}

const float* KvCache::f32_keys(int64_t layer) const {
  JM_CHECK(type_ == DType::F32, "float32 rows asked of a ", dtype_name(type_), " KV cache");
  return reinterpret_cast<const float*>(k_[size_t(layer)].data());
}

const float* KvCache::f32_values(int64_t layer) const {
  JM_CHECK(type_ == DType::F32, "float32 rows asked of a ", dtype_name(type_), " KV cache");
  return reinterpret_cast<const float*>(v_[size_t(layer)].data());
}

size_t KvCache::bytes() const { return size_t(2 * k_.size()) * size_t(capacity_ * row_size_) * dtype_size(type_); }

}  // namespace jetmoe
