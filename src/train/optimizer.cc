#include "train/optimizer.h"

#include <atomic>
#include <cmath>

#include "core/error.h"

namespace jetmoe {
namespace {

using optimizer_kernels::GradScales;

// Work is cut into runs of at most kRun elements of one tensor (128 KB of each array), which the
// threads take in turn from a shared counter. The runs are also the fixed units of the norm's sum.
constexpr int64_t kRun = int64_t(1) << 15;

struct Run {
  size_t tensor;
  int64_t begin, end;
};

template <class Span>
std::vector<Run> runs_of(std::span<const Span> tensors) {
  std::vector<Run> runs;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t n = int64_t(tensors[i].size());
    for (int64_t begin = 0; begin < n; begin += kRun) runs.push_back({i, begin, std::min(n, begin + kRun)});
  }
  return runs;
}

// body(run index) for every run, on the pool's threads (or this one when pool is null).
template <class Body>
void for_each_run(ThreadPool* pool, size_t n_runs, const Body& body) {
  std::atomic<size_t> next{0};
  const auto take = [&] {
    for (size_t r = next.fetch_add(1, std::memory_order_relaxed); r < n_runs;
         r = next.fetch_add(1, std::memory_order_relaxed))
      body(r);
  };
  if (!pool || pool->num_threads() == 1 || n_runs < 2) return take();
  pool->parallel_for(std::min<int64_t>(pool->num_threads(), int64_t(n_runs)), [&](int64_t, int64_t) { take(); });
}

double global_norm(std::span<const std::span<const float>> grads, ThreadPool* pool, const GradScales& scales) {
  const std::vector<Run> runs = runs_of(grads);
  std::vector<double> partial(runs.size());
  for_each_run(pool, runs.size(), [&](size_t r) {
    const Run& run = runs[r];
    partial[r] = optimizer_kernels::sum_of_squares(grads[run.tensor].data() + run.begin, run.end - run.begin, scales);
  });
  double sum_sq = 0.0;
  for (double s : partial) sum_sq += s;
  return std::sqrt(sum_sq);
}

}  // namespace

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
  update(params, grads, lr, nullptr, {}, {});
}

void AdamW::step(std::span<const std::span<float>> params, std::span<const std::span<const float>> grads, double lr,
                 ThreadPool& pool, const GradScales& scales, std::span<const std::span<uint16_t>> bf16_copies) {
  update(params, grads, lr, &pool, scales, bf16_copies);
}

void AdamW::update(std::span<const std::span<float>> params, std::span<const std::span<const float>> grads, double lr,
                   ThreadPool* pool, const GradScales& scales, std::span<const std::span<uint16_t>> bf16_copies) {
  JM_CHECK(params.size() == params_.size() && grads.size() == params_.size());
  JM_CHECK(bf16_copies.empty() || bf16_copies.size() == params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    JM_CHECK(params[i].size() == exp_avg_[i].size() && grads[i].size() == params[i].size(), params_[i].name);
    JM_CHECK(bf16_copies.empty() || bf16_copies[i].size() == params[i].size(), params_[i].name);
  }
  ++steps_;
  const double t = double(steps_);
  // Scalars are formed in double and rounded once, in the order torch uses, so a short run
  // matches torch.optim.AdamW to float rounding.
  optimizer_kernels::AdamWScalars s;
  s.b1 = float(options_.beta1), s.b2 = float(options_.beta2);
  s.one_minus_b1 = float(1.0 - options_.beta1), s.one_minus_b2 = float(1.0 - options_.beta2);
  s.step_size = float(lr / (1.0 - std::pow(options_.beta1, t)));
  s.sqrt_bc2 = float(std::sqrt(1.0 - std::pow(options_.beta2, t)));
  s.eps = float(options_.eps);
  const float decay_keep = float(1.0 - lr * options_.weight_decay);
  const std::vector<Run> runs = runs_of(grads);
  for_each_run(pool, runs.size(), [&](size_t r) {
    const Run& run = runs[r];
    const size_t i = run.tensor;
    optimizer_kernels::AdamWScalars local = s;
    local.keep = params_[i].decay ? decay_keep : 1.0f;
    uint16_t* bf16 = bf16_copies.empty() ? nullptr : bf16_copies[i].data() + run.begin;
    optimizer_kernels::adamw_update(params[i].data() + run.begin, exp_avg_[i].data() + run.begin,
                                    exp_avg_sq_[i].data() + run.begin, grads[i].data() + run.begin, run.end - run.begin,
                                    local, scales, bf16);
  });
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
  const std::vector<std::span<const float>> read_only(grads.begin(), grads.end());
  const double norm = global_norm(read_only, nullptr, {});
  const float scale = grad_clip_factor(norm, max_norm);
  if (scale != 1.0f)
    for (std::span<float> g : grads)
      for (float& x : g) x *= scale;
  return norm;
}

double grad_global_norm(std::span<const std::span<const float>> grads, ThreadPool& pool, const GradScales& scales) {
  return global_norm(grads, &pool, scales);
}

float grad_clip_factor(double norm, double max_norm) {
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) return float(max_norm / (norm + 1e-6));
  return 1.0f;
}

}  // namespace jetmoe
