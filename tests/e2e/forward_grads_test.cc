// `jetmoe forward --grads-out`: the file holds every parameter's gradient under its HF name, the
// JSON lists every loss term, and both equal what the library computes for the same sequence
// (the library's gradients are checked against HF and PyTorch autograd in tests/model).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "formats/safetensors.h"
#include "model/backward.h"
#include "model/model.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kCkpt = std::string(JETMOE_FIXTURES_DIR) + "/ref/e8_odd_f32";

TEST(CliGrads, ForwardWritesTheGradientsAndLossTermsOfTheLibrary) {
  const fs::path dir = fs::temp_directory_path() / ("jetmoe_grads_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string out_path = (dir / "grads.safetensors").string();
  const std::vector<int32_t> ids = {1, 17, 33, 150, 9, 4, 200};
  const std::vector<int64_t> labels = {-100, 17, 33, -100, 9, 4, 200};
  const CliResult r =
      run_cli({"forward", "-m", kCkpt, "--ids", "1,17,33,150,9,4,200", "--labels", "-100,17,33,-100,9,4,200",
               "--grads-out", out_path, "--aux-coef", "0.2", "--z-coef", "0.03", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json out = json::parse(r.out);

  const std::unique_ptr<Model> model = Model::load(kCkpt);
  ThreadPool pool(1);
  Gradients want(model->config());
  const TrainingSequence sequence{ids, labels};
  const LossTerms terms =
      forward_backward(*model, std::span(&sequence, 1), LossOptions{.aux_coef = 0.2, .z_coef = 0.03}, want, pool);

  const json& got_terms = out.at("loss_terms");
  // Printed with full double precision by nlohmann::json: equal up to the last bit or two.
  EXPECT_NEAR(got_terms.at("ce").get<double>(), terms.ce, 1e-12);
  EXPECT_NEAR(got_terms.at("load_balance").get<double>(), terms.load_balance, 1e-12);
  EXPECT_NEAR(got_terms.at("z_loss").get<double>(), terms.z_loss, 1e-12);
  EXPECT_NEAR(got_terms.at("total").get<double>(), terms.total, 1e-12);
  EXPECT_EQ(got_terms.at("scored_tokens").get<int64_t>(), 5);  // labels[1..6], one of them ignored
  EXPECT_NEAR(out.at("loss").get<double>(), terms.ce, 1e-12);
  EXPECT_NEAR(terms.total, terms.ce + 0.2 * terms.load_balance + 0.03 * terms.z_loss, 1e-12);

  const SafetensorsFile file(out_path);
  ASSERT_EQ(file.tensors().size(), want.specs().size());
  for (size_t i = 0; i < want.specs().size(); ++i) {
    const auto it = file.tensors().find(want.specs()[i].name);
    ASSERT_NE(it, file.tensors().end()) << want.specs()[i].name;
    EXPECT_EQ(it->second.dtype, DType::F32);
    EXPECT_EQ(it->second.shape, want.specs()[i].shape);
    const float* got = static_cast<const float*>(it->second.data);
    const std::vector<float>& expect = want.tensor(i).values;
    for (size_t j = 0; j < expect.size(); ++j) ASSERT_EQ(got[j], expect[j]) << want.specs()[i].name << " [" << j << "]";
  }
  fs::remove_all(dir);
}

TEST(CliGrads, BadGradientFlagsAreUsageErrors) {
  EXPECT_EQ(run_cli({"forward", "-m", kCkpt, "--ids", "1,2,3", "--aux-coef", "0.1"}).exit_code,
            2);                                                                                    // needs --grads-out
  EXPECT_EQ(run_cli({"forward", "-m", kCkpt, "--ids", "1,2,3", "--labels", "1,2"}).exit_code, 2);  // one per id
  EXPECT_EQ(run_cli({"forward", "-m", kCkpt, "--ids", "1,2,3", "--labels", "1,x,3"}).exit_code, 2);
  const CliResult r = run_cli({"forward", "-m", kCkpt, "--ids", "1,2,3", "--labels", "1,2,999"});  // vocab 211
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("999"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace jetmoe::e2e
