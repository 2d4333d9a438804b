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
                    std::span<const std::span<uint16_t>> bf16_copies, ThreadPool&) {
        ++calls;
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

}  // namespace
}  // namespace jetmoe
