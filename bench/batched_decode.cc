// Aggregate decoding speed of B sequences: one Model::forward per sequence per token (what the
// server did before continuous batching) against one Model::forward_batch per token for all B.
// Each sequence first prefills its own prompt; both modes then decode greedily from copies of
// the same caches, and must pick the same tokens. Rounds alternate the two modes (the machine
// is shared and noisy); the best round of each is reported with the mean.
//
//   bench/batched_decode.sh BUILD_DIR MODEL_DIR [THREADS] [BATCH] [TOKENS] [ROUNDS] [PROMPT] [MODES]
// A model to run it on: jetmoe init --config bench/jetmoe-mid.json -o /tmp/jm-mid --dtype bf16
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/model.h"

namespace {

using Clock = std::chrono::steady_clock;
using jetmoe::FloatTensor;
using jetmoe::KvCache;
using jetmoe::LogitsMode;
using jetmoe::Model;

int32_t argmax(const float* v, int64_t n) { return int32_t(std::max_element(v, v + n) - v); }

struct Round {
  double seconds = 0;
  std::vector<std::vector<int32_t>> tokens;  // [B][N]
};

// Greedy decoding of `tokens` steps from `caches` (copied), with `first` as every sequence's
// first input; batched or one forward per sequence.
Round decode(const Model& model, std::vector<KvCache> caches, const std::vector<int32_t>& first, int tokens,
             bool batched, jetmoe::ThreadPool& pool) {
  const int64_t B = int64_t(caches.size()), V = model.config().vocab_size;
  Round round;
  round.tokens.assign(size_t(B), {});
  std::vector<int32_t> feed = first;
  FloatTensor logits;
  const Clock::time_point start = Clock::now();
  for (int step = 0; step < tokens; ++step) {
    if (batched) {
      std::vector<jetmoe::SequenceChunk> chunks;
      for (int64_t b = 0; b < B; ++b) chunks.push_back({std::span(&feed[size_t(b)], 1), &caches[size_t(b)]});
      model.forward_batch(chunks, logits, pool);
      for (int64_t b = 0; b < B; ++b) feed[size_t(b)] = argmax(logits.data() + b * V, V);
    } else {
      for (int64_t b = 0; b < B; ++b) {
        model.forward(std::span(&feed[size_t(b)], 1), caches[size_t(b)], logits, pool, LogitsMode::Last);
        feed[size_t(b)] = argmax(logits.data(), V);
      }
    }
    for (int64_t b = 0; b < B; ++b) round.tokens[size_t(b)].push_back(feed[size_t(b)]);
  }
  round.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return round;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [THREADS=2] [BATCH=4] [TOKENS=32] [ROUNDS=3] [PROMPT=64] [MODES=3]\n"
                 "  MODES: 1 one forward per sequence only, 2 forward_batch only (for profiling), 3 both\n", argv[0]);
    return 2;
  }
  const auto arg = [&](int i, int fallback) { return argc > i ? std::atoi(argv[i]) : fallback; };
  const int threads = arg(2, 2), batch = arg(3, 4), tokens = arg(4, 32), rounds = arg(5, 3), prompt_len = arg(6, 64);
  const int modes = arg(7, 3);
  try {
    const std::unique_ptr<Model> model = Model::load(argv[1]);
    jetmoe::ThreadPool pool(threads);
    const int64_t V = model->config().vocab_size;

    // B different prompts (seeded ids), each prefilled alone.
    std::vector<KvCache> caches;
    std::vector<int32_t> first;
    uint32_t seed = 12345;
    FloatTensor logits;
    for (int b = 0; b < batch; ++b) {
      std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
      for (int32_t& id : prompt) id = int32_t(((seed = seed * 1664525u + 1013904223u) >> 8) % uint32_t(V));
      caches.push_back(model->make_cache(prompt_len + tokens + 1));
      model->forward(prompt, caches.back(), logits, pool, LogitsMode::Last);
      first.push_back(argmax(logits.data(), V));
    }

    decode(*model, caches, first, 2, false, pool);  // warm-up: pages the weights in
    std::vector<double> alone_s, batched_s;
    bool same_tokens = true;
    for (int r = 0; r < rounds; ++r) {
      const Round alone = modes & 1 ? decode(*model, caches, first, tokens, false, pool) : Round{};
      const Round together = modes & 2 ? decode(*model, caches, first, tokens, true, pool) : Round{};
      alone_s.push_back(alone.seconds);
      batched_s.push_back(together.seconds);
      same_tokens = same_tokens && (modes != 3 || alone.tokens == together.tokens);
    }
    const auto report = [&](const char* name, const std::vector<double>& s) {
      double mean = 0;
      for (double x : s) mean += x;
      mean /= double(s.size());
      const double best = *std::min_element(s.begin(), s.end());
      const double n = double(batch) * tokens;
      std::printf("%-22s best %7.2f tok/s  mean %7.2f tok/s  (%d x %d tokens, %d rounds)\n", name, n / best, n / mean,
                  batch, tokens, int(s.size()));
      return best;
    };
    std::printf("model %s, %d threads, prompts of %d tokens\n", argv[1], threads, prompt_len);
    const double a = modes & 1 ? report("one forward per seq", alone_s) : 0;
    const double b = modes & 2 ? report("one forward_batch", batched_s) : 0;
    if (modes != 3) return 0;
    std::printf("speed-up (best rounds) %.2fx; greedy tokens identical: %s\n", a / b, same_tokens ? "yes" : "NO");
    return same_tokens ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "batched_decode: %s\n", e.what());
    return 1;
  }
}
