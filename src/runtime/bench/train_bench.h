// The training-step test of `jetmoe bench`: forward + backward of the training loss over a batch
// of random token windows, then one optimizer update, on fp32 master copies of a checkpoint's
// weights — the work of one `jetmoe train` step (src/train/trainer.h), timed on its own.
//
// The optimizer lives in a room above this one (src/train), so the caller passes the update in.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "kernels/ops.h"
#include "model/backward.h"
#include "model/weights.h"

namespace jetmoe {

// Updates params (fp32 masters, param_specs order) from grads (same order), e.g. clip + AdamW,
// on the pool's threads, reading each gradient times grad_scale (1 / micro-batches: the buffers
// hold the sum over the step's micro-batches, as in the trainer); when bf16_copies is not empty,
// also writes every updated parameter rounded to bf16 into it, in the same pass (as the
// trainer's compute_dtype "bf16" does).
using ParamUpdate = std::function<void(std::span<const std::span<float>> params,
                                       std::span<const std::span<float>> grads, float grad_scale,
                                       std::span<const std::span<uint16_t>> bf16_copies, ThreadPool& pool)>;
// Builds the update for a model's parameters (called once per run, before the first step).
using ParamUpdateFactory = std::function<ParamUpdate(const std::vector<ParamSpec>& specs)>;

struct TrainBenchOptions {
  int64_t batch = 4;       // sequences per micro-batch
  int64_t seq_len = 128;   // input tokens per sequence (labels: the next ids, HF convention)
  // Micro-batches per step (the trainer's grad_accum): each a forward + backward adding to the
  // gradients, then one update. The recipe's 4M-token batches are many micro-batches, so the
  // update's memory-bound pass over all parameters weighs little there.
  int64_t micro_batches = 1;
  int reps = 3;            // timed steps, after one warm-up step
  // F32: forward and backward read the fp32 masters. BF16: they read a bf16 copy refreshed by
  // every update (counted in the step) and round activations to bf16, as the trainer's
  // compute_dtype "bf16" does.
  ops::Activations activations = ops::Activations::F32;
  LossOptions loss;
  uint64_t seed = 1;  // of the random token ids
};

struct TrainBenchResult {
  int64_t tokens_per_step = 0;      // micro_batches x batch x seq_len
  std::vector<double> step_seconds;  // one per timed step
  double first_loss = 0, last_loss = 0;  // total training loss (mean over micro-batches) of the warm-up and the last step
};

// Runs 1 + reps steps on the weights of the checkpoint in `model_dir` (upcast to fp32 masters).
TrainBenchResult run_train_bench(const std::string& model_dir, const TrainBenchOptions& options,
                                 const ParamUpdateFactory& make_update, ThreadPool& pool);

}  // namespace jetmoe
