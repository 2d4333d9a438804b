#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace jetmoe {

namespace {

double half_cosine(double x) { return 0.5 * (1.0 + std::cos(std::numbers::pi * x)); }

double decay_factor(DecayShape shape, double x, double floor) {
  switch (shape) {
    case DecayShape::Exponential: return std::pow(floor, x);
    case DecayShape::Linear: return 1.0 - (1.0 - floor) * x;
    case DecayShape::Cosine: return floor + (1.0 - floor) * half_cosine(x);
    case DecayShape::OneMinusSqrt: return floor + (1.0 - floor) * (1.0 - std::sqrt(x));
  }
  return 1.0;
}

}  // namespace

void validate_schedule(const ScheduleOptions& o) {
  if (!(o.peak_lr > 0) || !std::isfinite(o.peak_lr)) fail("optimizer.lr must be a positive number, got ", o.peak_lr);
  if (o.total_steps < 1) fail("steps must be at least 1, got ", o.total_steps);
  if (o.warmup_steps < 0 || o.warmup_steps > o.total_steps)
    fail("schedule.warmup_steps must be in [0, ", o.total_steps, "], got ", o.warmup_steps);
  if (!(o.warmup_start_fraction >= 0 && o.warmup_start_fraction <= 1))
    fail("schedule.warmup_start_fraction must be in [0, 1], got ", o.warmup_start_fraction);
  if (!(o.final_fraction >= 0 && o.final_fraction <= 1))
    fail("schedule.final_fraction must be in [0, 1], got ", o.final_fraction);
  if (o.kind == ScheduleKind::Wsd) {
    if (o.decay_steps < 0 || o.warmup_steps + o.decay_steps > o.total_steps)
      fail("schedule.decay_steps must be in [0, steps - warmup_steps] = [0, ", o.total_steps - o.warmup_steps,
           "], got ", o.decay_steps);
    if (o.decay_shape == DecayShape::Exponential && o.final_fraction <= 0 && o.decay_steps > 0)
      fail("schedule.final_fraction must be positive for an exponential decay");
  }
}

int64_t decay_start_step(const ScheduleOptions& o) {
  return o.kind == ScheduleKind::Wsd ? o.total_steps - o.decay_steps : o.total_steps;
}

double learning_rate(const ScheduleOptions& o, int64_t step) {
  const double eta = o.peak_lr, r = o.final_fraction;
  if (step < o.warmup_steps) {
    const double a = o.warmup_start_fraction;
    return eta * (a + (1.0 - a) * double(step) / double(o.warmup_steps));
  }
  switch (o.kind) {
    case ScheduleKind::Constant: return eta;
    case ScheduleKind::Cosine: {
      const int64_t span = o.total_steps - o.warmup_steps;
      const double x = span > 0 ? std::min(1.0, double(step - o.warmup_steps) / double(span)) : 1.0;
      return eta * (r + (1.0 - r) * half_cosine(x));
    }
    case ScheduleKind::Wsd: {
      const int64_t start = decay_start_step(o);
      if (step < start) return eta;
      const double x = o.decay_steps > 0 ? std::min(1.0, double(step - start) / double(o.decay_steps)) : 1.0;
      return eta * decay_factor(o.decay_shape, x, r);
    }
  }
  return eta;
}

ScheduleKind parse_schedule_kind(const std::string& text, const std::string& field) {
  if (text == "constant") return ScheduleKind::Constant;
  if (text == "cosine") return ScheduleKind::Cosine;
  if (text == "wsd") return ScheduleKind::Wsd;
  fail(field, ": unknown schedule '", text, "' (expected constant, cosine or wsd)");
}

DecayShape parse_decay_shape(const std::string& text, const std::string& field) {
  if (text == "exponential") return DecayShape::Exponential;
  if (text == "linear") return DecayShape::Linear;
  if (text == "cosine") return DecayShape::Cosine;
  if (text == "1-sqrt") return DecayShape::OneMinusSqrt;
  fail(field, ": unknown decay shape '", text, "' (expected exponential, linear, cosine or 1-sqrt)");
}

std::string schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::Wsd: return "wsd";
  }
  return "?";
}

std::string decay_shape_name(DecayShape shape) {
  switch (shape) {
    case DecayShape::Exponential: return "exponential";
    case DecayShape::Linear: return "linear";
    case DecayShape::Cosine: return "cosine";
    case DecayShape::OneMinusSqrt: return "1-sqrt";
  }
  return "?";
}

}  // namespace jetmoe
