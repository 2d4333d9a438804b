// The `jetmoe train` configuration: one JSON file, every field optional except the model and the
// data, resolved here into typed structs. Unknown keys are errors (a typo must not silently fall
// back to a default), and every error names the field ("optimizer.beta2: must be a number").
//
//   {
//     "model": "path/to/config.json",      // or an inline HF config object {"vocab_size": ..., ...}
//     "data": {
//       "phases": [                         // in order; each gets token_share of the budget
//         {"name": "phase1", "token_share": 0.8,
//          "sources": [{"name": "news", "path": "shards/news", "weight": 2.0}, ...]},
//         {"name": "phase2", "token_share": 0.2, "sources": [...]}],
//       "validation_fraction": 0.01         // tail of each source held out for eval
//     },
//     "seq_len": 256,                       // tokens per packed sequence (<= max_position_embeddings)
//     "batch_size": 8,                      // sequences per micro-batch
//     "grad_accum": 1,                      // micro-batches per update: tokens/update = product of the three
//     "steps": 1000,                        // or "token_budget": 2048000 (rounded up to whole updates)
//     "optimizer": {"lr": 5e-4, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
//                   "grad_clip": 1.0, "decay_norms_and_biases": false},
//     "schedule": {"kind": "wsd",           // wsd | cosine | constant (schedule.h)
//                  "warmup_steps": 10,      // or "warmup_fraction" of the steps
//                  "warmup_start_fraction": 0.1,
//                  "decay_steps": 200,      // or "decay_fraction"; default: the last phase's share
//                  "decay_shape": "exponential", "final_fraction": 0.1},
//     "loss": {"aux_coef": 0.01, "z_coef": 0.001},
//     "eval": {"interval": 100, "max_sequences": 64},     // interval 0: only at the end
//     "checkpoint": {"interval": 100, "keep_last": 3},    // interval 0: only at the end
//     "log_interval": 1,
//     "output_dir": "runs/demo",
//     "threads": 2,
//     "seed": 0,                            // weights init and data order
//     "compute_dtype": "f32",               // or "bf16": forward/backward read a bf16 copy of the
//                                           //   fp32 masters and round activations (forward) and
//                                           //   output gradients (backward) to bf16 in the weight
//                                           //   products; gradients, AdamW and checkpoints stay fp32
//     "report_mfu": true                    // measure the CPU's peak at start (~0.2 s) and log
//                                           //   model FLOPs utilisation
//   }
// Relative paths are taken from the config file's directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/hf_config.h"
#include "model/backward.h"
#include "train/data_source.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace jetmoe {

struct TrainConfig {
  JetMoeConfig model;
  std::vector<TrainingPhase> phases;
  double validation_fraction = 0.01;
  int64_t seq_len = 256;
  int64_t batch_size = 8;
  int64_t grad_accum = 1;
  int64_t steps = 0;  // resolved from token_budget when that is given
  AdamWOptions optimizer;
  double grad_clip = 1.0;  // 0: no clipping
  ScheduleOptions schedule;  // total_steps and the warmup/decay steps resolved
  LossOptions loss;
  int64_t eval_interval = 0;
  int64_t eval_max_sequences = 64;  // 0: all held-out sequences
  int64_t checkpoint_interval = 0;
  int64_t keep_last = 3;
  int64_t log_interval = 1;
  std::string output_dir = "runs/train";
  int threads = 1;
  uint64_t seed = 0;
  DType compute_dtype = DType::F32;  // F32 or BF16 (the weights the forward/backward read)
  bool report_mfu = true;
  std::string resolved_json;  // the config after overrides, with absolute paths (saved with the run)

  int64_t tokens_per_step() const { return batch_size * grad_accum * seq_len; }
  int64_t token_budget() const { return steps * tokens_per_step(); }
};

// Reads `path` and applies `overrides`, each "dotted.key=value" (value parsed as JSON when it
// parses, else taken as a string; array elements by index, e.g. data.phases.0.token_share=0.5).
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides);
// The same from text; `base_dir` resolves relative paths, `source` names it in errors.
TrainConfig parse_train_config(const std::string& text, const std::string& source, const std::string& base_dir,
                               const std::vector<std::string>& overrides);

}  // namespace jetmoe
