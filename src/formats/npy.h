// NumPy .npy files: a float32 writer for dumps, and a reader (float32/float64/int64/int32)
// used by tests to load reference fixtures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace jetmoe {

void write_npy_f32(const std::string& path, const float* data, const Shape& shape);

struct NpyArray {
  Shape shape;
  std::vector<double> values;  // every element converted to double (exact for the types above)
};
NpyArray read_npy(const std::string& path);

}  // namespace jetmoe
