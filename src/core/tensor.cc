#include "core/tensor.h"

#include "core/error.h"

namespace jetmoe {

std::string shape_str(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

TensorView TensorView::slice0(int64_t i) const {
  JM_CHECK(!shape.empty() && i >= 0 && i < shape[0], "slice ", i, " of ", shape_str(shape));
  TensorView out;
  out.dtype = dtype;
  out.shape.assign(shape.begin() + 1, shape.end());
  out.data = static_cast<const char*>(data) + size_t(i) * dtype_bytes(dtype, shape_numel(out.shape));
  return out;
}

}  // namespace jetmoe
