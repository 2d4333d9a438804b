// Training checkpoints: RUN/step-N/ holds
//   config.json + model.safetensors   the fp32 model in the HF layout (`jetmoe generate -m` loads it)
//   optimizer.safetensors             AdamW moments, "exp_avg.<name>" / "exp_avg_sq.<name>"
//   trainer_state.json                step, tokens seen, seed and data position
//   train_config.json                 the resolved training config, so --resume needs nothing else
// A checkpoint is written into RUN/.step-N.partial-<pid> and renamed to RUN/step-N only when
// complete, so a crash mid-save leaves the previous checkpoints as they were; then all but the
// newest keep_last are removed, as are the partial directories of saves whose process died.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "formats/hf_config.h"
#include "train/data_source.h"

namespace jetmoe {

struct TrainerState {
  int64_t step = 0;         // updates taken
  int64_t tokens_seen = 0;  // training tokens consumed (inputs)
  uint64_t seed = 0;        // the run's seed (init and data order); the trainer has no other RNG
  DataPosition data;
};

struct CheckpointContents {
  const JetMoeConfig* model_config;
  std::vector<NamedTensor> weights;          // fp32 master weights under HF names
  std::vector<NamedTensor> optimizer_state;  // AdamW::state_tensors()
  TrainerState state;
  std::string train_config_json;
};

// Writes RUN/step-N atomically and prunes old ones; returns the checkpoint's path.
std::string save_checkpoint(const std::string& run_dir, const CheckpointContents& contents, int64_t keep_last);

// The step-N directories of a run, oldest first (partial ones are not listed).
std::vector<std::string> list_checkpoints(const std::string& run_dir);

// `dir` is a checkpoint (has trainer_state.json) or a run directory (its newest checkpoint).
// Throws naming the directory when there is none.
std::string resolve_checkpoint_dir(const std::string& dir);

TrainerState read_trainer_state(const std::string& checkpoint_dir);

}  // namespace jetmoe
