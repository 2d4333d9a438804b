// Helpers shared by the model tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/npy.h"
#include "model/model.h"

namespace jetmoe {

// Keeps every named intermediate the forward reports.
class RecordingObserver : public ForwardObserver {
 public:
  void observe(const char* name, int layer, const float* data, const Shape& shape) override {
    values_[{name, layer}].assign(data, data + shape_numel(shape));
  }
  const std::vector<float>& get(const std::string& name, int layer) const {
    auto it = values_.find({name, layer});
    if (it == values_.end()) fail("observer saw no '", name, "' for layer ", layer);
    return it->second;
  }

 private:
  std::map<std::pair<std::string, int>, std::vector<float>> values_;
};

// Max |got[i] - want[offset + i]| over i < n; infinity on a size mismatch or a NaN.
template <typename Want>
double max_abs_diff(const std::vector<float>& got, const std::vector<Want>& want, int64_t offset, int64_t n) {
  if (int64_t(got.size()) < n || int64_t(want.size()) < offset + n) return INFINITY;
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double diff = std::fabs(double(got[size_t(i)]) - double(want[size_t(offset + i)]));
    if (!(diff <= worst)) worst = std::isnan(diff) ? INFINITY : diff;
  }
  return worst;
}

inline std::vector<int32_t> row_ids(const NpyArray& ids, int64_t row) {
  const int64_t T = ids.shape.size() == 1 ? ids.shape[0] : ids.shape[1];
  std::vector<int32_t> out(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) out[size_t(t)] = int32_t(ids.values[size_t(row * T + t)]);
  return out;
}

inline int32_t argmax(const float* v, int64_t n) { return int32_t(std::max_element(v, v + n) - v); }

}  // namespace jetmoe
