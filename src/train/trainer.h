// The training loop: fp32 master weights that a Model reads in place, AdamW, the schedule,
// gradient accumulation, periodic eval of the held-out split, metrics, checkpoints and resume.
//
// Each update takes grad_accum micro-batches of batch_size packed sequences. A sequence of
// seq_len + 1 ids from TrainingData runs as seq_len input tokens whose labels are the same ids
// (HF convention: logits[t] is scored against id t+1), so seq_len - 1 tokens are scored per
// sequence. Micro-batch gradients are averaged (equal token counts, so this is the mean over
// the whole update), clipped to the global norm, then applied.
//
// Files in output_dir: metrics.jsonl (one JSON object per step, plus {"eval": ...} lines),
// step-N/ checkpoints (run_checkpoint.h) and plot.html (plot.h).
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/parallel.h"
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

 private:
  struct StepResult;
  StepResult train_step();
  std::string save();
  std::vector<NamedTensor> weight_views() const;

  TrainConfig config_;
  std::unique_ptr<TrainingData> data_;
  std::ostream& progress_;
  ThreadPool pool_;
  std::vector<ParamSpec> specs_;
  std::vector<std::vector<float>> master_;  // fp32 master weights, param_specs order
  std::unique_ptr<Model> model_;           // reads master_ in place
  AdamW adamw_;
  int64_t step_ = 0;
  int64_t tokens_seen_ = 0;
  std::string last_checkpoint_;
};

}  // namespace jetmoe
