// The training stream over a mixture of shard directories (see data_source.h for the interface).
//
// Each source's token stream (documents separated by EOS, as `jetmoe prepare` wrote them) is split
// once: the last `validation_fraction` of its tokens (at least seq_len + 1 when the fraction is
// positive) is held out for validation and never used for training. The training part is cut into
// windows of seq_len + 1 tokens with a stride of seq_len (documents packed back to back, so every
// token is a target once per epoch); each source walks its windows in a seeded random order,
// reshuffled every epoch.
//
// For each sequence the phase is the one whose cumulative token_share (normalized to sum to 1)
// covers tokens_seen / token_budget, and the source is drawn from that phase's weights with a
// random number that depends only on the seed and the sequence's index. So the stream is a pure
// function of (seed, the sequences served so far, each source's place in its window order), which
// is what DataPosition saves.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "train/data_source.h"

namespace jetmoe {

// Throws jetmoe::Error: no phases; a phase with no sources, a negative or non-finite weight, or
// weights that do not sum to a positive number; a token_share that is not positive; seq_len < 1;
// validation_fraction outside [0, 1); a missing, invalid or empty source directory; a source too
// small for one training and one validation sequence; sources prepared with different vocabularies.
std::unique_ptr<TrainingData> open_training_data(const std::vector<TrainingPhase>& phases, int64_t seq_len,
                                                 uint64_t seed, double validation_fraction);

}  // namespace jetmoe
