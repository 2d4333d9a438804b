// The training loop: fp32 master weights that a Model reads in place, AdamW, the schedule,
// gradient accumulation, periodic eval of the held-out split, metrics, checkpoints and resume.
//
// Each update takes grad_accum micro-batches of batch_size packed sequences. A sequence of
// seq_len + 1 ids from TrainingData runs as seq_len input tokens whose labels are the same ids
// (HF convention: logits[t] is scored against id t+1), so seq_len - 1 tokens are scored per
// sequence. Micro-batch gradients are averaged (equal token counts, so this is the mean over
// the whole update), clipped to the global norm, then applied.
//
// compute_dtype "bf16": forward and backward run on a second Model over a bf16 copy of the
// masters, refreshed after every update, whose weight products round activations to bf16
// (ops::Activations::BF16); gradients, AdamW, evaluation (model()) and checkpoints use the masters.
//
// Files in output_dir: metrics.jsonl (one JSON object per step, plus {"eval": ...} lines),
// step-N/ checkpoints (run_checkpoint.h) and plot.html (plot.h). With report_mfu, run() first
// measures the CPU's peak (mfu.h) and every step line and progress line carry "mfu".
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "model/gradients.h"
#include "model/model.h"
#include "train/data_source.h"
#include "train/optimizer.h"
#include "train/train_config.h"

namespace jetmoe {

struct TrainSummary {
  int64_t steps = 0;
  double last_loss = 0.0;
  double last_eval_loss = 0.0;  // NaN when no eval ran
  double tokens_per_second = 0.0;  // training tokens over the wall time of this invocation's steps
  double mfu = 0.0;  // model FLOPs utilisation at that rate (mfu.h); 0 when report_mfu is off
  std::string last_checkpoint;
};

class Trainer {
 public:
  // Fresh weights from config.seed. Progress lines go to `progress`.
  Trainer(TrainConfig config, std::unique_ptr<TrainingData> data, std::ostream& progress);
  ~Trainer();

  // Continues from a checkpoint (run_checkpoint.h): weights, moments, step and data position.
  void resume(const std::string& checkpoint_dir);

  // Trains until config.steps; evaluates and checkpoints on schedule and at the end. Throws an
  // Error on a non-finite loss or gradient (no checkpoint is written for that step).
  TrainSummary run();

  // Mean next-token cross-entropy over the held-out sequences (at most eval_max_sequences).
  double evaluate();

  int64_t step() const { return step_; }

  // The model over the fp32 master weights, as a checkpoint saved now would hold them.
  const Model& model() const { return *model_; }

 private:
  struct StepResult;
  StepResult train_step();
  std::string save();
  std::vector<NamedTensor> weight_views() const;
  const Model& compute_model() const { return compute_model_ ? *compute_model_ : *model_; }
  void refresh_compute_weights();
  void report_peak();
  double mfu(double tokens_per_s) const;

  TrainConfig config_;
  std::unique_ptr<TrainingData> data_;
  std::ostream& progress_;
  ThreadPool pool_;
  std::vector<ParamSpec> specs_;
  std::vector<std::vector<float>> master_;  // fp32 master weights, param_specs order
  Gradients grads_;                         // of the current update, kept so steps reuse its pages
  std::unique_ptr<Model> model_;           // reads master_ in place
  std::vector<std::vector<uint16_t>> compute_bf16_;  // compute_dtype bf16: the masters rounded
  std::unique_ptr<Model> compute_model_;   // reads compute_bf16_; null for f32 compute
  double flops_per_token_ = 0.0;           // mfu.h
  double peak_flops_ = 0.0;                // 0: not measured (report_mfu false)
  AdamW adamw_;
  int64_t step_ = 0;
  int64_t tokens_seen_ = 0;
  std::string last_checkpoint_;
};

}  // namespace jetmoe
