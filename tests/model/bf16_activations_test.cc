// Prefill on bf16 dot products (ops::Activations::BF16, `jetmoe bench -a bf16`, bf16 training
// compute) through the whole model: the BF16-weight reference case (tests/fixtures/ref/bf16,
// float64 reference logits) run with activations rounded to bf16 in every prefill-sized product,
// and an F32-weight case where only prefill attention rounds.
// Rounding an activation to bf16 moves it by at most 2^-9 of itself, so each product moves by at
// most 2^-9 sum |x w|; through two layers and the head that stays within a few percent of the
// logits' range, while a wrong packing or pairing of the kernel moves logits by their own size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "formats/npy.h"
#include "kernels/cpu/kernel_table.h"
#include "model/model.h"
#include "model_test_util.h"

namespace jetmoe {
namespace {

// One prompt of a reference case run with fp32 and with bf16 activations: the largest logit
// differences from the float64 reference and between the two runs.
struct PrefillDifferences {
  double range = 0.0;              // max |logit| of the reference
  double bf16_vs_reference = 0.0;  // max |bf16 logit - reference|
  double bf16_vs_fp32 = 0.0;
  double fp32_vs_reference = 0.0;
};

PrefillDifferences prefill_both_ways(const std::string& case_name) {
  const std::string dir = std::string(JETMOE_FIXTURES_DIR) + "/ref/" + case_name;
  const std::vector<int32_t> tokens = row_ids(read_npy(dir + "/input_ids.npy"), 0);
  const int64_t T = int64_t(tokens.size());
  EXPECT_GT(T, kernels::cpu::kGemvMaxRows) << "the case must reach the prefill products";
  std::unique_ptr<Model> model = Model::load(dir);
  ThreadPool pool(2);
  const auto run = [&](ops::Activations activations) {
    model->set_matmul_options({.activations = activations});
    KvCache cache = model->make_cache(T);
    FloatTensor logits;
    model->forward(tokens, cache, logits, pool, LogitsMode::All);
    return logits.values;
  };
  const NpyArray want = read_npy(dir + "/logits.npy");
  const std::vector<float> fp32 = run(ops::Activations::F32), bf16 = run(ops::Activations::BF16);
  PrefillDifferences d;
  for (double v : want.values) d.range = std::max(d.range, std::fabs(v));
  const int64_t n = int64_t(want.values.size());
  d.bf16_vs_reference = max_abs_diff(bf16, want.values, 0, n);
  d.bf16_vs_fp32 = max_abs_diff(bf16, fp32, 0, int64_t(fp32.size()));
  d.fp32_vs_reference = max_abs_diff(fp32, want.values, 0, n);
  std::cout << "[ measured ] " << case_name << ", bf16 activations: max |logit - float64 reference| = "
            << d.bf16_vs_reference << " (max |logit| " << d.range << "), vs fp32 activations " << d.bf16_vs_fp32
            << "\n";
  return d;
}

TEST(Bf16Activations, PrefillStaysNearTheFloat64ReferenceAndDiffersFromFp32) {
  const PrefillDifferences d = prefill_both_ways("bf16");
  EXPECT_LE(d.bf16_vs_reference, 0.02 * d.range);
  EXPECT_GT(d.bf16_vs_fp32, 0.0) << "the bf16 path did not run: logits equal the fp32 ones bit for bit";
  // The fp32 path itself holds the reference's 1e-4 (ref_fixture_test.cc).
  EXPECT_LE(d.fp32_vs_reference, 1e-4);
}

// F32 weights keep their products exact under Activations::BF16, so only prefill attention runs
// on bf16 operands here (queries, keys, values, probabilities: each moved by at most 2^-9 of
// itself), in a case long enough for several key blocks.
TEST(Bf16Activations, PrefillAttentionOfF32WeightsStaysNearTheReference) {
  const PrefillDifferences d = prefill_both_ways("long_f32");
  // Tiny random models amplify: token 0 attends to itself alone, so its output is its value
  // row rounded to bf16, which already moves its logits by 1e-2.
  EXPECT_LE(d.bf16_vs_reference, 0.02 * d.range);
  EXPECT_GT(d.bf16_vs_fp32, 1e-4) << "attention did not run on bf16 operands";
  EXPECT_LE(d.fp32_vs_reference, 1e-4);
}

}  // namespace
}  // namespace jetmoe
