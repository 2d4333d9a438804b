#include "train/data_mixture.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "core/error.h"
#include "train/data_token_stream.h"

namespace jetmoe {
namespace {

// SplitMix64 finalizer: a well-mixed 64-bit hash, the basis of every random choice here.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t mix64(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }

// Uniform in [0, 1) from 53 random bits.
double unit_interval(uint64_t bits) { return double(bits >> 11) * 0x1.0p-53; }

struct Source {
  std::string path;  // as given in the config
  std::unique_ptr<TokenStream> stream;
  int64_t train_tokens = 0;  // [0, train_tokens) trains; the rest validates
  int64_t windows = 0;       // training windows per epoch
  // Place in the window order: the epoch and the index within its permutation.
  uint64_t epoch = 0;
  uint64_t index = 0;
  std::vector<uint32_t> order;  // permutation of [0, windows) for `epoch`
  uint64_t order_epoch = UINT64_MAX;
};

struct Phase {
  std::string name;
  std::vector<size_t> sources;      // into MixtureData::sources_
  std::vector<std::string> names;   // per entry of `sources`, for describe_last()
  std::vector<double> cumulative;   // cumulative normalized weights
  double end_share = 1;             // cumulative normalized token share at the phase's end
};

class MixtureData final : public TrainingData {
 public:
  MixtureData(const std::vector<TrainingPhase>& phases, int64_t seq_len, uint64_t seed, double validation_fraction)
      : seq_len_(seq_len), seed_(seed) {
    if (phases.empty()) fail("data: no training phases");
    if (seq_len < 1) fail("data: the sequence length must be at least 1 (got ", seq_len, ")");
    if (!(validation_fraction >= 0 && validation_fraction < 1)) {
      fail("data: the validation fraction must be in [0, 1) (got ", validation_fraction, ")");
    }
    double share_total = 0;
    for (const TrainingPhase& phase : phases) {
      if (!(phase.token_share > 0 && std::isfinite(phase.token_share))) {
        fail("data: phase '", phase.name, "' has token_share ", phase.token_share, "; it must be positive");
      }
      share_total += phase.token_share;
    }
    std::map<std::string, size_t> by_path;
    double share_end = 0;
    for (const TrainingPhase& config : phases) {
      Phase& phase = phases_.emplace_back();
      phase.name = config.name;
      share_end += config.token_share;
      phase.end_share = share_end / share_total;
      if (config.sources.empty()) fail("data: phase '", config.name, "' has no sources");
      double weight_total = 0;
      for (const MixtureSource& source : config.sources) {
        if (!(source.weight >= 0 && std::isfinite(source.weight))) {
          fail("data: phase '", config.name, "' source '", source.name, "' has weight ", source.weight,
               "; weights must be finite and not negative");
        }
        weight_total += source.weight;
      }
      if (!(weight_total > 0)) fail("data: the weights of phase '", config.name, "' do not sum to a positive number");
      double cumulative = 0;
      for (const MixtureSource& source : config.sources) {
        if (source.path.empty()) fail("data: phase '", config.name, "' source '", source.name, "' has no path");
        const std::string key = std::filesystem::weakly_canonical(std::filesystem::absolute(source.path)).string();
        auto [it, added] = by_path.try_emplace(key, sources_.size());
        if (added) open_source(source, validation_fraction);
        phase.sources.push_back(it->second);
        phase.names.push_back(source.name.empty() ? source.path : source.name);
        cumulative += source.weight / weight_total;
        phase.cumulative.push_back(cumulative);
      }
      phase.cumulative.back() = 1.0;  // no rounding gap above the last source
    }
    phases_.back().end_share = 1.0;
    fingerprint_ = compute_fingerprint();
  }

  void next_sequence(int64_t tokens_seen, int64_t token_budget, std::vector<int32_t>& tokens) override {
    if (token_budget <= 0) fail("data: the token budget must be positive (got ", token_budget, ")");
    const double progress = double(std::max<int64_t>(tokens_seen, 0)) / double(token_budget);
    size_t p = 0;
    while (p + 1 < phases_.size() && progress >= phases_[p].end_share) ++p;
    const Phase& phase = phases_[p];

    const double u = unit_interval(mix64(seed_, mix64(sequences_served_, 0x5eed5eedull)));
    const size_t pick = size_t(std::upper_bound(phase.cumulative.begin(), phase.cumulative.end(), u) -
                               phase.cumulative.begin());
    const size_t entry = std::min(pick, phase.sources.size() - 1);
    Source& source = sources_[phase.sources[entry]];

    const uint32_t window = next_window(source, phase.sources[entry]);
    tokens.clear();
    source.stream->append(int64_t(window) * seq_len_, seq_len_ + 1, tokens);
    ++sequences_served_;
    last_ = phase.name + "/" + phase.names[entry];
  }

  const std::vector<std::vector<int32_t>>& validation_sequences() const override { return validation_; }

  DataPosition position() const override {
    DataPosition position;
    position.sequences_served = sequences_served_;
    position.cursor.push_back(fingerprint_);
    for (const Source& source : sources_) {
      position.cursor.push_back(source.epoch);
      position.cursor.push_back(source.index);
    }
    return position;
  }

  void restore(const DataPosition& position) override {
    if (position.cursor.size() != 1 + 2 * sources_.size() || position.cursor[0] != fingerprint_) {
      fail("data: the saved data position belongs to another mixture (different sources, shards, sequence "
           "length or seed); resume with the configuration the run started with");
    }
    sequences_served_ = position.sequences_served;
    for (size_t i = 0; i < sources_.size(); ++i) {
      sources_[i].epoch = position.cursor[1 + 2 * i];
      sources_[i].index = position.cursor[2 + 2 * i];
      if (sources_[i].index >= uint64_t(sources_[i].windows)) fail("data: the saved data position is out of range");
    }
    last_.clear();
  }

  std::string describe_last() const override { return last_; }

 private:
  void open_source(const MixtureSource& config, double validation_fraction) {
    Source& source = sources_.emplace_back();
    source.path = config.path;
    source.stream = std::make_unique<TokenStream>(config.path);
    const TokenStream& stream = *source.stream;
    if (sources_.size() > 1 && stream.vocab_size() != sources_.front().stream->vocab_size()) {
      fail(config.path, ": prepared with a vocabulary of ", stream.vocab_size(), " tokens but ", sources_.front().path,
           " with ", sources_.front().stream->vocab_size(), "; prepare every source with the same tokenizer");
    }
    const int64_t window = seq_len_ + 1;
    const int64_t held_out =
        validation_fraction > 0 ? std::max(window, int64_t(std::llround(double(stream.size()) * validation_fraction))) : 0;
    source.train_tokens = stream.size() - held_out;
    if (source.train_tokens < window) {
      fail(config.path, ": source '", config.name, "' has ", stream.size(), " tokens, too few for one training sequence of ",
           window, " tokens", held_out > 0 ? str_cat(" after holding out ", held_out, " for validation") : std::string());
    }
    source.windows = (source.train_tokens - 1) / seq_len_;
    if (source.windows > int64_t(UINT32_MAX)) fail(config.path, ": too many training windows");
    for (int64_t begin = source.train_tokens; begin + window <= stream.size(); begin += seq_len_) {
      stream.append(begin, window, validation_.emplace_back());
    }
  }

  // The window to serve next from `source`, advancing its place (a new shuffled order each epoch).
  uint32_t next_window(Source& source, size_t source_index) {
    if (source.order_epoch != source.epoch) {
      source.order.resize(size_t(source.windows));
      std::iota(source.order.begin(), source.order.end(), 0u);
      uint64_t state = mix64(seed_, mix64(source_index, source.epoch));
      for (size_t i = source.order.size(); i > 1; --i) {  // Fisher-Yates
        state = mix64(state);
        std::swap(source.order[i - 1], source.order[state % i]);
      }
      source.order_epoch = source.epoch;
    }
    const uint32_t window = source.order[source.index];
    if (++source.index == uint64_t(source.windows)) {
      source.index = 0;
      ++source.epoch;
    }
    return window;
  }

  // Identifies what a DataPosition is valid for: the seed, the sequence length and each source's split.
  uint64_t compute_fingerprint() const {
    uint64_t h = mix64(seed_, uint64_t(seq_len_));
    for (const Source& source : sources_) {
      h = mix64(h, uint64_t(source.stream->size()));
      h = mix64(h, uint64_t(source.train_tokens));
      for (const char c : source.stream->manifest().tokenizer_hash) h = mix64(h, uint64_t(uint8_t(c)));
    }
    return h;
  }

  int64_t seq_len_;
  uint64_t seed_;
  std::vector<Source> sources_;
  std::vector<Phase> phases_;
  std::vector<std::vector<int32_t>> validation_;
  uint64_t sequences_served_ = 0;
  uint64_t fingerprint_ = 0;
  std::string last_;
};

}  // namespace

std::unique_ptr<TrainingData> open_training_data(const std::vector<TrainingPhase>& phases, int64_t seq_len,
                                                 uint64_t seed, double validation_fraction) {
  return std::make_unique<MixtureData>(phases, seq_len, seed, validation_fraction);
}

}  // namespace jetmoe
