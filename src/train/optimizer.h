// AdamW over fp32 master weights with fp32 moments (PyTorch's torch.optim.AdamW update, decoupled
// weight decay), and global-norm gradient clipping. The optimizer knows parameters only as named
// flat fp32 buffers, so it can be tested without a model.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "formats/checkpoint.h"
#include "model/weights.h"
#include "train/optimizer_kernels.h"

namespace jetmoe {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_norms_and_biases = false;  // by default only weight matrices and embeddings decay
};

// One optimized tensor: its HF name, element count and whether weight decay applies.
struct OptimizedParam {
  std::string name;
  Shape shape;
  bool decay = true;
};

// Norm weights (init Ones) and biases (init Zeros) are exempt from decay unless asked; every
// matrix, expert stack and the embedding (init Normal) decays.
std::vector<OptimizedParam> optimized_params(const std::vector<ParamSpec>& specs, bool decay_norms_and_biases);

class AdamW {
 public:
  AdamW(std::vector<OptimizedParam> params, const AdamWOptions& options);

  // One update at learning rate `lr`: params[i] and grads[i] have params()[i]'s element count.
  //   p <- p * (1 - lr*wd)  (decayed tensors only)
  //   m <- b1*m + (1-b1)*g;   v <- b2*v + (1-b2)*g^2
  //   p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
  void step(std::span<const std::span<float>> params, std::span<const std::span<const float>> grads, double lr);

  // The same update with the work shared among the pool threads (the result does not depend on
  // their number), each gradient read as (g * scales.first) * scales.second — what scaling the
  // buffers first would give, bit for bit — and, when bf16_copies is not empty, every updated
  // parameter also written rounded to bf16 into bf16_copies[i] (from_f32's rounding): one pass
  // over memory instead of one per job.
  using GradScales = optimizer_kernels::GradScales;
  void step(std::span<const std::span<float>> params, std::span<const std::span<const float>> grads, double lr,
            ThreadPool& pool, const GradScales& scales = {}, std::span<const std::span<uint16_t>> bf16_copies = {});

  int64_t steps_taken() const { return steps_; }
  const std::vector<OptimizedParam>& params() const { return params_; }

  // The moments as "exp_avg.<name>" / "exp_avg_sq.<name>" F32 views (valid while *this lives).
  std::vector<NamedTensor> state_tensors() const;
  // Restores moments saved by state_tensors() and the number of steps taken; throws naming a
  // missing or misshapen tensor.
  void load_state(const TensorStore& store, int64_t steps_taken);

 private:
  std::vector<OptimizedParam> params_;
  AdamWOptions options_;
  int64_t steps_ = 0;
  std::vector<std::vector<float>> exp_avg_, exp_avg_sq_;

  void update(std::span<const std::span<float>> params, std::span<const std::span<const float>> grads, double lr,
              ThreadPool* pool, const GradScales& scales, std::span<const std::span<uint16_t>> bf16_copies);
};

// The L2 norm of all gradients taken together (accumulated in double). When it exceeds
// max_norm > 0, every gradient is scaled by max_norm / (norm + 1e-6) (as torch's
// clip_grad_norm_). Returns the norm before clipping; a non-finite norm is returned untouched.
double clip_grad_global_norm(std::span<const std::span<float>> grads, double max_norm);

// The global L2 norm of the gradients read as (g * scales.first) * scales.second, without changing
// them; the work is shared among the pool threads. Sums of squares run in double over fixed runs
// of each tensor, added in tensor order: the same bits for any number of threads.
double grad_global_norm(std::span<const std::span<const float>> grads, ThreadPool& pool,
                        const optimizer_kernels::GradScales& scales = {});

// The factor clip_grad_global_norm applies for this norm: float(max_norm / (norm + 1e-6)) when
// max_norm > 0 and a finite norm exceeds it, else 1.
float grad_clip_factor(double norm, double max_norm);

}  // namespace jetmoe
