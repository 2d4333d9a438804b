// Learning-rate schedules, as a function of the number of updates already taken (s = 0 for the
// first update), for a run of N updates with peak rate η.
//   warmup (all kinds), s < W:   η·(a + (1 − a)·s/W)             a = warmup_start_fraction
//   constant:                    η
//   cosine, s ≥ W:               η·(r + (1 − r)·½(1 + cos(π·x))),  x = (s − W)/(N − W)
//   wsd (spec §2.2): stable      η for W ≤ s < S = N − D
//                    decay       η·f(x), x = (s − S)/D, with the decay shape
//                      exponential  f = r^x                    (the model card's "exponential")
//                      linear       f = 1 − (1 − r)·x
//                      cosine       f = r + (1 − r)·½(1 + cos(π·x))
//                      1-sqrt       f = r + (1 − r)·(1 − √x)
// r = final_fraction is the floor: the rate after the run (and where every decay lands at x = 1).
// With a = 0 the warmup is MiniCPM's η·s/W.
#pragma once

#include <cstdint>
#include <string>

namespace jetmoe {

enum class ScheduleKind { Constant, Cosine, Wsd };
enum class DecayShape { Exponential, Linear, Cosine, OneMinusSqrt };

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::Wsd;
  double peak_lr = 5e-4;
  int64_t total_steps = 0;             // N
  int64_t warmup_steps = 0;            // W
  double warmup_start_fraction = 0.1;  // a
  int64_t decay_steps = 0;             // D (wsd only)
  DecayShape decay_shape = DecayShape::Exponential;
  double final_fraction = 0.1;         // r
};

// Throws an Error naming the field ("schedule.warmup_steps ...") on inconsistent options.
void validate_schedule(const ScheduleOptions& options);

double learning_rate(const ScheduleOptions& options, int64_t step);

// The step at which the wsd decay starts (N − D); N for the other kinds.
int64_t decay_start_step(const ScheduleOptions& options);

// "constant" | "cosine" | "wsd" and "exponential" | "linear" | "cosine" | "1-sqrt"; parsing
// throws naming `field` and the accepted values.
ScheduleKind parse_schedule_kind(const std::string& text, const std::string& field);
DecayShape parse_decay_shape(const std::string& text, const std::string& field);
std::string schedule_kind_name(ScheduleKind kind);
std::string decay_shape_name(DecayShape shape);

}  // namespace jetmoe
