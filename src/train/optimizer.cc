#include "train/optimizer.h"

#include <cmath>

#include "core/error.h"

namespace jetmoe {

std::vector<OptimizedParam> optimized_params(const std::vector<ParamSpec>& specs, bool decay_norms_and_biases) {
  std::vector<OptimizedParam> params;
  params.reserve(specs.size());
  for (const ParamSpec& spec : specs) {
    const bool matrix = spec.init == ParamSpec::Init::Normal;
    params.push_back({spec.name, spec.shape, matrix || decay_norms_and_biases});
  }
  return params;
}

AdamW::AdamW(std::vector<OptimizedParam> params, const AdamWOptions& options)
    : params_(std::move(params)), options_(options) {
  if (!(options.beta1 >= 0 && options.beta1 < 1)) fail("optimizer.beta1 must be in [0, 1), got ", options.beta1);
  if (!(options.beta2 >= 0 && options.beta2 < 1)) fail("optimizer.beta2 must be in [0, 1), got ", options.beta2);
  if (!(options.eps > 0)) fail("optimizer.eps must be positive, got ", options.eps);
  if (!(options.weight_decay >= 0)) fail("optimizer.weight_decay must be >= 0, got ", options.weight_decay);
  for (const OptimizedParam& p : params_) {
    exp_avg_.emplace_back(size_t(shape_numel(p.shape)), 0.0f);
    exp_avg_sq_.emplace_back(size_t(shape_numel(p.shape)), 0.0f);
  }
}

void AdamW::step(std::span<const std::span<float>> params, std::span<const std::span<const float>> grads, double lr) {
  JM_CHECK(params.size() == params_.size() && grads.size() == params_.size());
  ++steps_;
  const double t = double(steps_);
  // Scalars are formed in double and rounded once, in the order torch uses, so a short run
  // matches torch.optim.AdamW to float rounding.
  const float b1 = float(options_.beta1), b2 = float(options_.beta2);
  const float one_minus_b1 = float(1.0 - options_.beta1), one_minus_b2 = float(1.0 - options_.beta2);
  const float step_size = float(lr / (1.0 - std::pow(options_.beta1, t)));
  const float sqrt_bc2 = float(std::sqrt(1.0 - std::pow(options_.beta2, t)));
  const float eps = float(options_.eps);
  for (size_t i = 0; i < params_.size(); ++i) {
    std::span<float> p = params[i];
    std::span<const float> g = grads[i];
    float* m = exp_avg_[i].data();
    float* v = exp_avg_sq_[i].data();
    JM_CHECK(p.size() == exp_avg_[i].size() && g.size() == p.size(), params_[i].name);
    const float keep = params_[i].decay ? float(1.0 - lr * options_.weight_decay) : 1.0f;
    for (size_t j = 0; j < p.size(); ++j) {
      m[j] = b1 * m[j] + one_minus_b1 * g[j];
      v[j] = b2 * v[j] + one_minus_b2 * g[j] * g[j];
      const float denom = std::sqrt(v[j]) / sqrt_bc2 + eps;
      p[j] = p[j] * keep - step_size * (m[j] / denom);
    }
  }
}

std::vector<NamedTensor> AdamW::state_tensors() const {
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < params_.size(); ++i) {
    tensors.push_back({"exp_avg." + params_[i].name, TensorView{DType::F32, params_[i].shape, exp_avg_[i].data()}});
    tensors.push_back(
        {"exp_avg_sq." + params_[i].name, TensorView{DType::F32, params_[i].shape, exp_avg_sq_[i].data()}});
  }
  return tensors;
}

void AdamW::load_state(const TensorStore& store, int64_t steps_taken) {
  if (steps_taken < 0) fail(store.source(), ": negative optimizer step count ", steps_taken);
  const auto load = [&](const std::string& name, const Shape& shape, std::vector<float>& into) {
    const TensorView& view = store.get(name);
    if (view.dtype != DType::F32 || view.shape != shape)
      fail(store.source(), ": optimizer tensor '", name, "' is ", dtype_name(view.dtype), " ", shape_str(view.shape),
           ", expected F32 ", shape_str(shape));
    const float* data = static_cast<const float*>(view.data);
    into.assign(data, data + into.size());
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    load("exp_avg." + params_[i].name, params_[i].shape, exp_avg_[i]);
    load("exp_avg_sq." + params_[i].name, params_[i].shape, exp_avg_sq_[i]);
  }
  steps_ = steps_taken;
}

double clip_grad_global_norm(std::span<const std::span<float>> grads, double max_norm) {
  double sum_sq = 0.0;
  for (std::span<float> g : grads)
    for (float x : g) sum_sq += double(x) * x;
  const double norm = std::sqrt(sum_sq);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    const float scale = float(max_norm / (norm + 1e-6));
    for (std::span<float> g : grads)
      for (float& x : g) x *= scale;
  }
  return norm;
}

}  // namespace jetmoe
