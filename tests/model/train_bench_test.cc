// jetmoe bench's training step (runtime/bench/train_bench.h) hands its update the weights the next
// step computes with: the fp32 masters, and in bf16 mode also the bf16 copy the compute model
// reads, which the update refreshes in its own pass (as the trainer's fused AdamW does).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "runtime/bench/train_bench.h"

namespace jetmoe {
namespace {

const std::string kFixture = std::string(JETMOE_FIXTURES_DIR) + "/ref/top1_f32";

// Zeroes every master and every bf16 copy it is given; counts its calls and checks the spans.
struct ZeroingUpdate {
  ops::Activations activations;
  int calls = 0;

  ParamUpdateFactory factory() {
    return [this](const std::vector<ParamSpec>&) -> ParamUpdate {
      return [this](std::span<const std::span<float>> params, std::span<const std::span<float>> grads,
                    float grad_scale, std::span<const std::span<uint16_t>> bf16_copies, ThreadPool&) {
        ++calls;
        EXPECT_EQ(grad_scale, 1.0f);
        EXPECT_EQ(grads.size(), params.size());
        EXPECT_EQ(bf16_copies.size(), activations == ops::Activations::BF16 ? params.size() : 0u);
        for (size_t i = 0; i < params.size(); ++i) {
          std::fill(params[i].begin(), params[i].end(), 0.0f);
          if (i < bf16_copies.size()) {
            EXPECT_EQ(bf16_copies[i].size(), params[i].size()) << "tensor " << i;
            std::fill(bf16_copies[i].begin(), bf16_copies[i].end(), uint16_t(0));  // bf16 +0
          }
        }
      };
    };
  }
};

TEST(TrainBench, TheUpdateWritesTheWeightsTheNextStepComputesWith) {
  ThreadPool pool(2);
  double last_loss[2] = {0, 0};
  for (ops::Activations activations : {ops::Activations::F32, ops::Activations::BF16}) {
    TrainBenchOptions options;
    options.batch = 2;
    options.seq_len = 5;
    options.reps = 1;
    options.activations = activations;
    ZeroingUpdate update{activations};
    const TrainBenchResult r = run_train_bench(kFixture, options, update.factory(), pool);
    EXPECT_EQ(update.calls, 2);  // the warm-up step and the timed one
    ASSERT_EQ(r.step_seconds.size(), 1u);
    // The second step ran on all-zero weights: not the fixture's loss any more...
    EXPECT_GT(std::fabs(r.last_loss - r.first_loss), 1e-3) << "activations " << int(activations);
    last_loss[activations == ops::Activations::BF16] = r.last_loss;
  }
  // ...and the same in both precisions (zero is exact in bf16), so the bf16 compute model read
  // the copies the update wrote.
  EXPECT_NEAR(last_loss[1], last_loss[0], 1e-6 * std::fabs(last_loss[0]));
}

// Keeps the first gradients it is given, times grad_scale, and leaves the weights alone.
struct RecordingUpdate {
  std::vector<std::vector<float>> first;
  int calls = 0;

  ParamUpdateFactory factory() {
    return [this](const std::vector<ParamSpec>&) -> ParamUpdate {
      return [this](std::span<const std::span<float>>, std::span<const std::span<float>> grads, float grad_scale,
                    std::span<const std::span<uint16_t>>, ThreadPool&) {
        if (calls++ > 0) return;
        for (const std::span<float> g : grads) {
          first.emplace_back(g.begin(), g.end());
          for (float& x : first.back()) x *= grad_scale;
        }
      };
    };
  }
};

// Three micro-batches of one sequence make one step over the same three sequences as one batch
// of three: one update per step, reading the summed gradients times 1/3 (as the trainer's
// grad_accum). The load-balancing loss is left out: it is not a mean over tokens, so it depends
// on how the tokens are grouped.
TEST(TrainBench, MicroBatchesSumTheirGradientsIntoOneUpdate) {
  ThreadPool pool(2);
  TrainBenchOptions options;
  options.seq_len = 6;
  options.reps = 2;
  options.loss.aux_coef = 0;
  RecordingUpdate whole, accumulated;
  options.batch = 3;
  const TrainBenchResult one = run_train_bench(kFixture, options, whole.factory(), pool);
  options.batch = 1;
  options.micro_batches = 3;
  const TrainBenchResult three = run_train_bench(kFixture, options, accumulated.factory(), pool);

  EXPECT_EQ(accumulated.calls, 3);  // the warm-up step and two timed ones
  EXPECT_EQ(three.tokens_per_step, 18);
  EXPECT_EQ(three.step_seconds.size(), 2u);
  EXPECT_NEAR(three.first_loss, one.first_loss, 1e-6 * std::fabs(one.first_loss));
  ASSERT_EQ(accumulated.first.size(), whole.first.size());
  double max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < whole.first.size(); ++i) {
    ASSERT_EQ(accumulated.first[i].size(), whole.first[i].size());
    for (size_t j = 0; j < whole.first[i].size(); ++j) {
      max_abs = std::max(max_abs, double(std::fabs(whole.first[i][j])));
      max_diff = std::max(max_diff, double(std::fabs(accumulated.first[i][j] - whole.first[i][j])));
    }
  }
  ASSERT_GT(max_abs, 0.0);
  // fp32 sums of the same terms in another grouping: a few ulps of the largest gradient.
  EXPECT_LE(max_diff, 1e-5 * max_abs);
}

}  // namespace
}  // namespace jetmoe
