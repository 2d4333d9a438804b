// Token sampling from a logits row, in the order of llama.cpp's common chain:
// penalties (repetition; presence and frequency, see penalties.h) -> top-k -> top-p -> min-p
// -> temperature -> draw.
// Deterministic from the seed: each Sampler owns its random stream, nothing is global.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace jetmoe {

struct SamplingParams {
  float temperature = 0.8f;    // 0 = greedy argmax (ties go to the lowest id)
  int top_k = 40;              // <= 0: off
  float top_p = 0.95f;         // in (0, 1]; 1: off
  float min_p = 0.05f;         // in [0, 1]; <= 0: off
  float repeat_penalty = 1.0f; // > 0; 1: off
  int repeat_last_n = 64;      // tokens of history the penalty looks at; 0: off, -1: all
  float presence_penalty = 0.0f;   // OpenAI's, in [-2, 2]; 0: off (penalties.h)
  float frequency_penalty = 0.0f;  // OpenAI's, in [-2, 2]; 0: off
  uint64_t seed = 0;
};

// Throws jetmoe::Error naming the first parameter out of range.
void validate_sampling_params(const SamplingParams& params);

// A surviving token and its (possibly penalized, filtered or scaled) logit.
struct Candidate {
  int32_t id;
  float logit;
};

// The steps of the chain, each usable on its own (tests check them one by one). Candidates
// arrive in any order unless stated; every filter keeps at least one token.
//
// CTRL-style penalty over the distinct ids among the last `last_n` of `history`: a positive
// logit is divided by `penalty`, a negative one multiplied.
void apply_repetition_penalty(std::vector<Candidate>& candidates, std::span<const int32_t> history,
                              float penalty, int last_n);
// Sorts by logit, highest first (ties: lower id first).
void sort_candidates(std::vector<Candidate>& candidates);
// Keeps the k highest, sorted as by sort_candidates.
void apply_top_k(std::vector<Candidate>& candidates, int k);
// Expects sorted candidates. Keeps the shortest prefix whose softmax mass reaches p.
void apply_top_p(std::vector<Candidate>& candidates, float p);
// Keeps tokens whose probability is at least min_p times that of the most likely one.
void apply_min_p(std::vector<Candidate>& candidates, float min_p);
// Softmax of logit / temperature, in candidate order, in double for the tails.
std::vector<double> candidate_probabilities(const std::vector<Candidate>& candidates,
                                            double temperature = 1.0);

class Sampler {
 public:
  // Validates `params` (throws jetmoe::Error).
  explicit Sampler(const SamplingParams& params);

  const SamplingParams& params() const { return params_; }

  // Picks the next token from `logits` [V]; `history` is what the repetition penalty looks at
  // (the prompt and the tokens generated so far), `generated` what the presence and frequency
  // penalties count (only the tokens sampled so far).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history = {},
                 std::span<const int32_t> generated = {});

 private:
  // Uniform double in [0, 1) from 53 random bits (same on every platform).
  double next_uniform();

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<Candidate> candidates_;  // reused across calls
};

}  // namespace jetmoe
