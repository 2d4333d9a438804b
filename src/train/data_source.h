// Token data for training: binary shards written by `jetmoe prepare`, mixed from named sources
// by weight, phase by phase, and packed into fixed-length sequences in an order that depends only
// on the seed. The trainer sees only TrainingData; everything about files lives behind it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace jetmoe {

struct MixtureSource {
  std::string name;  // e.g. "news"
  std::string path;  // a directory of shards written by `jetmoe prepare`
  double weight = 1.0;
};

struct TrainingPhase {
  std::string name;                    // e.g. "phase1"
  std::vector<MixtureSource> sources;
  double token_share = 1.0;            // fraction of the token budget spent in this phase
};

// Where the stream is, so a resumed run continues with exactly the same sequences.
struct DataPosition {
  uint64_t sequences_served = 0;
  std::vector<uint64_t> cursor;        // implementation-defined, saved and restored verbatim
};

class TrainingData {
 public:
  virtual ~TrainingData() = default;
  // Fills `tokens` with seq_len + 1 ids (inputs and shifted targets of one packed sequence)
  // for the phase that `tokens_seen` (of `token_budget`) falls in. Deterministic.
  virtual void next_sequence(int64_t tokens_seen, int64_t token_budget, std::vector<int32_t>& tokens) = 0;
  // The held-out sequences (fixed; the same every call).
  virtual const std::vector<std::vector<int32_t>>& validation_sequences() const = 0;
  virtual DataPosition position() const = 0;
  virtual void restore(const DataPosition& position) = 0;
  // Which phase and source the last sequence came from (for logs).
  virtual std::string describe_last() const = 0;
};

}  // namespace jetmoe
