// TensorView: a typed, shaped, non-owning view of contiguous row-major memory (often an mmap).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace jetmoe {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape);  // "[8, 2048, 2048]"

struct TensorView {
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return dtype_bytes(dtype, numel()); }
  // Element offset of row `i` of the first dimension (e.g. expert i of an [E, out, in] stack).
  TensorView slice0(int64_t i) const;
  bool empty() const { return data == nullptr; }
};

// A float32 tensor that owns its storage; used for activations, logits and dumps.
struct FloatTensor {
  Shape shape;
  std::vector<float> values;

  FloatTensor() = default;
  explicit FloatTensor(Shape s) : shape(std::move(s)), values(size_t(shape_numel(shape)), 0.0f) {}
  float* data() { return values.data(); }
  const float* data() const { return values.data(); }
  TensorView view() const { return TensorView{DType::F32, shape, values.data()}; }
};

}  // namespace jetmoe
