#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/error.h"
#include "runtime/penalties.h"

namespace jetmoe {

void validate_sampling_params(const SamplingParams& p) {
  // Written as !(in range) so that NaN is refused too.
  if (!(p.temperature >= 0.0f) || std::isinf(p.temperature))
    fail("sampling parameter temperature must be a finite number >= 0, got ", p.temperature);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    fail("sampling parameter top_p must be in (0, 1], got ", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
    fail("sampling parameter min_p must be in [0, 1], got ", p.min_p);
  if (!(p.repeat_penalty > 0.0f) || std::isinf(p.repeat_penalty))
    fail("sampling parameter repeat_penalty must be a finite number > 0, got ", p.repeat_penalty);
  if (p.repeat_last_n < -1)
    fail("sampling parameter repeat_last_n must be >= -1 (-1 = whole history, 0 = off), got ",
         p.repeat_last_n);
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f))
    fail("sampling parameter presence_penalty must be in [-2, 2], got ", p.presence_penalty);
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f))
    fail("sampling parameter frequency_penalty must be in [-2, 2], got ", p.frequency_penalty);
}

void apply_repetition_penalty(std::vector<Candidate>& candidates, std::span<const int32_t> history,
                              float penalty, int last_n) {
  if (penalty == 1.0f || last_n == 0 || history.empty()) return;
  const size_t window = last_n < 0 ? history.size() : std::min(history.size(), size_t(last_n));
  const std::unordered_set<int32_t> recent(history.end() - ptrdiff_t(window), history.end());
  for (Candidate& c : candidates) {
    if (!recent.count(c.id)) continue;
    c.logit = c.logit > 0.0f ? c.logit / penalty : c.logit * penalty;
  }
}

static bool ranks_before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

void sort_candidates(std::vector<Candidate>& candidates) {
  std::sort(candidates.begin(), candidates.end(), ranks_before);
}

void apply_top_k(std::vector<Candidate>& candidates, int k) {
  if (k <= 0 || size_t(k) >= candidates.size()) {
    sort_candidates(candidates);
    return;
  }
  std::partial_sort(candidates.begin(), candidates.begin() + k, candidates.end(), ranks_before);
  candidates.resize(size_t(k));
}

std::vector<double> candidate_probabilities(const std::vector<Candidate>& candidates,
                                            double temperature) {
  std::vector<double> probs(candidates.size());
  if (candidates.empty()) return probs;
  float max_logit = candidates[0].logit;
  for (const Candidate& c : candidates) max_logit = std::max(max_logit, c.logit);
  double sum = 0.0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    // Shift before scaling so a tiny temperature cannot overflow: the exponent stays <= 0.
    probs[i] = std::exp((double(candidates[i].logit) - double(max_logit)) / temperature);
    sum += probs[i];
  }
  for (double& p : probs) p /= sum;
  return probs;
}

void apply_top_p(std::vector<Candidate>& candidates, float p) {
  if (p >= 1.0f || candidates.size() <= 1) return;
  const std::vector<double> probs = candidate_probabilities(candidates);
  double mass = 0.0;
  size_t keep = candidates.size();
  for (size_t i = 0; i < probs.size(); ++i) {
    mass += probs[i];
    if (mass >= double(p)) {
      keep = i + 1;
      break;
    }
  }
  candidates.resize(keep);
}

void apply_min_p(std::vector<Candidate>& candidates, float min_p) {
  if (min_p <= 0.0f || candidates.empty()) return;
  // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p): no softmax needed.
  float max_logit = candidates[0].logit;
  for (const Candidate& c : candidates) max_logit = std::max(max_logit, c.logit);
  const double threshold = double(max_logit) + std::log(double(min_p));
  std::erase_if(candidates, [&](const Candidate& c) { return double(c.logit) < threshold; });
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  validate_sampling_params(params_);
}

double Sampler::next_uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history,
                        std::span<const int32_t> generated) {
  if (logits.empty()) fail("sampler: empty logits row");
  candidates_.clear();
  candidates_.reserve(logits.size());
  bool any_finite = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    // -inf is a legitimate mask; NaN or +inf means the model produced garbage.
    if (std::isnan(logits[i]) || logits[i] == INFINITY)
      fail("sampler: logit of token ", i, " is ", logits[i]);
    any_finite = any_finite || std::isfinite(logits[i]);
    candidates_.push_back({int32_t(i), logits[i]});
  }
  if (!any_finite) fail("sampler: every logit is -inf");
  apply_repetition_penalty(candidates_, history, params_.repeat_penalty, params_.repeat_last_n);
  apply_presence_frequency_penalties(candidates_, generated, params_.presence_penalty, params_.frequency_penalty);

  if (params_.temperature == 0.0f) {
    return std::min_element(candidates_.begin(), candidates_.end(), ranks_before)->id;
  }

  apply_top_k(candidates_, params_.top_k);  // also sorts, which top-p needs
  apply_top_p(candidates_, params_.top_p);
  apply_min_p(candidates_, params_.min_p);

  const std::vector<double> probs = candidate_probabilities(candidates_, params_.temperature);
  const double u = next_uniform();
  double cumulative = 0.0;
  for (size_t i = 0; i < probs.size(); ++i) {
    cumulative += probs[i];
    if (u < cumulative) return candidates_[i].id;
  }
  return candidates_.back().id;  // u landed in the rounding slack of the last bucket
}

}  // namespace jetmoe
