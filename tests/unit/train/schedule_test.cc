// Each schedule against its formula (spec §2.2 for wsd) at the steps where it changes regime.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "train/schedule.h"

namespace jetmoe {
namespace {

ScheduleOptions wsd(DecayShape shape) {
  // N = 100, W = 10, D = 20 -> stable on [10, 80), decay on [80, 100); floor 0.1, start 0.1.
  return ScheduleOptions{.kind = ScheduleKind::Wsd, .peak_lr = 1e-3, .total_steps = 100, .warmup_steps = 10,
                         .warmup_start_fraction = 0.1, .decay_steps = 20, .decay_shape = shape,
                         .final_fraction = 0.1};
}

TEST(Schedule, WsdWarmupAndStable) {
  const ScheduleOptions o = wsd(DecayShape::Exponential);
  EXPECT_DOUBLE_EQ(learning_rate(o, 0), 1e-4);                        // start fraction
  EXPECT_DOUBLE_EQ(learning_rate(o, 5), 1e-3 * (0.1 + 0.9 * 0.5));    // halfway up
  EXPECT_DOUBLE_EQ(learning_rate(o, 10), 1e-3);                       // peak at W
  EXPECT_DOUBLE_EQ(learning_rate(o, 79), 1e-3);                       // still stable
  EXPECT_EQ(decay_start_step(o), 80);
  ScheduleOptions minicpm = o;
  minicpm.warmup_start_fraction = 0.0;
  EXPECT_DOUBLE_EQ(learning_rate(minicpm, 3), 1e-3 * 3 / 10);  // eta*s/W
}

TEST(Schedule, WsdDecayShapes) {
  const double x = 5.0 / 20.0;  // step 85
  EXPECT_NEAR(learning_rate(wsd(DecayShape::Exponential), 85), 1e-3 * std::pow(0.1, x), 1e-15);
  EXPECT_NEAR(learning_rate(wsd(DecayShape::Linear), 85), 1e-3 * (1 - 0.9 * x), 1e-15);
  EXPECT_NEAR(learning_rate(wsd(DecayShape::Cosine), 85),
              1e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * x))), 1e-15);
  EXPECT_NEAR(learning_rate(wsd(DecayShape::OneMinusSqrt), 85), 1e-3 * (0.1 + 0.9 * (1 - std::sqrt(x))), 1e-15);
  for (DecayShape shape : {DecayShape::Exponential, DecayShape::Linear, DecayShape::Cosine, DecayShape::OneMinusSqrt}) {
    const ScheduleOptions o = wsd(shape);
    EXPECT_DOUBLE_EQ(learning_rate(o, 80), 1e-3) << decay_shape_name(shape);   // decay starts at peak
    EXPECT_NEAR(learning_rate(o, 100), 1e-4, 1e-15) << decay_shape_name(shape);  // lands on the floor
    EXPECT_LT(learning_rate(o, 99), learning_rate(o, 90)) << decay_shape_name(shape);
  }
}

TEST(Schedule, CosineWithWarmup) {
  const ScheduleOptions o{.kind = ScheduleKind::Cosine, .peak_lr = 2.0, .total_steps = 110, .warmup_steps = 10,
                          .warmup_start_fraction = 0.0, .final_fraction = 0.0};
  EXPECT_DOUBLE_EQ(learning_rate(o, 0), 0.0);
  EXPECT_DOUBLE_EQ(learning_rate(o, 10), 2.0);
  EXPECT_NEAR(learning_rate(o, 60), 1.0, 1e-12);   // halfway: cos(pi/2) = 0
  EXPECT_NEAR(learning_rate(o, 35), 2.0 * 0.5 * (1 + std::cos(std::numbers::pi * 0.25)), 1e-12);
  EXPECT_NEAR(learning_rate(o, 110), 0.0, 1e-12);
}

TEST(Schedule, ConstantWithWarmup) {
  const ScheduleOptions o{.kind = ScheduleKind::Constant, .peak_lr = 3.0, .total_steps = 10, .warmup_steps = 2,
                          .warmup_start_fraction = 0.5};
  EXPECT_DOUBLE_EQ(learning_rate(o, 0), 1.5);
  EXPECT_DOUBLE_EQ(learning_rate(o, 1), 3.0 * 0.75);
  EXPECT_DOUBLE_EQ(learning_rate(o, 2), 3.0);
  EXPECT_DOUBLE_EQ(learning_rate(o, 9), 3.0);
}

TEST(Schedule, ValidationNamesTheField) {
  ScheduleOptions o = wsd(DecayShape::Linear);
  o.decay_steps = 95;  // warmup + decay > steps
  try {
    validate_schedule(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("schedule.decay_steps"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_decay_shape("sqrt", "schedule.decay_shape"), Error);
  EXPECT_EQ(parse_decay_shape("1-sqrt", "x"), DecayShape::OneMinusSqrt);
  EXPECT_EQ(parse_schedule_kind("wsd", "x"), ScheduleKind::Wsd);
  EXPECT_THROW(parse_schedule_kind("step", "schedule.kind"), Error);
}

}  // namespace
}  // namespace jetmoe
