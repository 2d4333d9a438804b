// Prefill on bf16 dot products (ops::Activations::BF16, `jetmoe bench -a bf16`, bf16 training
// compute) through the whole model: the BF16-weight reference case (tests/fixtures/ref/bf16,
// float64 reference logits) run with activations rounded to bf16 in every prefill-sized product.
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

TEST(Bf16Activations, PrefillStaysNearTheFloat64ReferenceAndDiffersFromFp32) {
  const std::string dir = std::string(JETMOE_FIXTURES_DIR) + "/ref/bf16";
  const NpyArray ids = read_npy(dir + "/input_ids.npy");
  const NpyArray want = read_npy(dir + "/logits.npy");
  const std::vector<int32_t> tokens = row_ids(ids, 0);
  const int64_t T = int64_t(tokens.size());
  ASSERT_GT(T, kernels::cpu::kGemvMaxRows) << "the case must reach the prefill products";

  std::unique_ptr<Model> model = Model::load(dir);
  ThreadPool pool(2);
  const auto run = [&](ops::Activations activations) {
    model->set_matmul_options({.activations = activations});
    KvCache cache = model->make_cache(T);
    FloatTensor logits;
    model->forward(tokens, cache, logits, pool, LogitsMode::All);
    return logits.values;
  };
  const std::vector<float> fp32 = run(ops::Activations::F32);
  const std::vector<float> bf16 = run(ops::Activations::BF16);

  double range = 0.0;
  for (double v : want.values) range = std::max(range, std::fabs(v));
  const double vs_reference = max_abs_diff(bf16, want.values, 0, int64_t(want.values.size()));
  const double vs_fp32 = max_abs_diff(bf16, fp32, 0, int64_t(fp32.size()));
  std::cout << "[ measured ] bf16 activations: max |logit - float64 reference| = " << vs_reference
            << " (max |logit| " << range << "), vs fp32 activations " << vs_fp32 << "\n";
  EXPECT_LE(vs_reference, 0.02 * range);
  EXPECT_GT(vs_fp32, 0.0) << "the bf16 path did not run: logits equal the fp32 ones bit for bit";
  // The fp32 path itself holds the reference's 1e-4 (ref_fixture_test.cc).
  EXPECT_LE(max_abs_diff(fp32, want.values, 0, int64_t(want.values.size())), 1e-4);
}

}  // namespace
}  // namespace jetmoe
