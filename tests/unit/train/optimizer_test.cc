// AdamW against torch.optim.AdamW (a committed fixture, gen_adamw_fixture.py) and against a hand
// computation; which parameters decay; global-norm clipping; saving and restoring the moments.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/optimizer.h"

namespace jetmoe {
namespace {

std::vector<float> floats(const nlohmann::json& array) {
  std::vector<float> out;
  for (const auto& x : array) out.push_back(float(x.get<double>()));
  return out;
}

TEST(AdamW, MatchesTorchOverSeveralSteps) {
  std::ifstream in(std::string(JETMOE_SOURCE_DIR) + "/tests/unit/train/adamw_torch_fixture.json");
  ASSERT_TRUE(in) << "missing adamw_torch_fixture.json";
  const nlohmann::json fixture = nlohmann::json::parse(in);
  AdamWOptions options;
  options.beta1 = fixture["beta1"];
  options.beta2 = fixture["beta2"];
  options.eps = fixture["eps"];
  options.weight_decay = fixture["weight_decay"];
  AdamW adamw({{"matrix", {3, 4}, true}, {"vector", {4}, false}}, options);
  std::vector<float> matrix = floats(fixture["initial"]["matrix"]), vector = floats(fixture["initial"]["vector"]);
  for (const auto& step : fixture["steps"]) {
    const std::vector<float> g_matrix = floats(step["grads"]["matrix"]), g_vector = floats(step["grads"]["vector"]);
    const std::vector<std::span<float>> params = {matrix, vector};
    const std::vector<std::span<const float>> grads = {g_matrix, g_vector};
    adamw.step(params, grads, step["lr"].get<double>());
    const std::vector<float> want_matrix = floats(step["expected"]["matrix"]);
    const std::vector<float> want_vector = floats(step["expected"]["vector"]);
    // Same float32 operations in the same order as torch; allow a few ulps for sqrt/division
    // rounding differences between the two libraries (values are O(1)).
    for (size_t i = 0; i < matrix.size(); ++i) EXPECT_NEAR(matrix[i], want_matrix[i], 2e-6) << "matrix " << i;
    for (size_t i = 0; i < vector.size(); ++i) EXPECT_NEAR(vector[i], want_vector[i], 2e-6) << "vector " << i;
  }
  EXPECT_EQ(adamw.steps_taken(), 5);
}

TEST(AdamW, FirstTwoStepsByHand) {
  // One scalar, lr 0.1, wd 0.5: computed in double from the AdamW definition.
  AdamWOptions options{.beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.5};
  AdamW adamw({{"w", {1}, true}}, options);
  std::vector<float> w = {2.0f};
  double p = 2.0, m = 0, v = 0;
  const double lr = 0.1;
  for (int t = 1; t <= 2; ++t) {
    const float g = t == 1 ? 0.5f : -1.5f;
    const std::vector<float> grad = {g};
    const std::vector<std::span<float>> params = {w};
    const std::vector<std::span<const float>> grads = {grad};
    adamw.step(params, grads, lr);
    p *= 1 - lr * 0.5;
    m = 0.9 * m + 0.1 * g;
    v = 0.99 * v + 0.01 * double(g) * g;
    p -= lr * (m / (1 - std::pow(0.9, t))) / (std::sqrt(v / (1 - std::pow(0.99, t))) + 1e-8);
    EXPECT_NEAR(w[0], p, 1e-6) << "step " << t;
  }
  // Step 1 of Adam moves by exactly lr (sign of the gradient) after decay: 2*0.95 - 0.1.
  EXPECT_NEAR(2.0 * 0.95 - 0.1, 1.8, 1e-12);
}

TEST(AdamW, NoDecayOnNormsAndBiasesUnlessAsked) {
  const std::vector<ParamSpec> specs = {{"model.embed_tokens.weight", {4, 2}, ParamSpec::Init::Normal},
                                        {"model.layers.0.input_layernorm.weight", {2}, ParamSpec::Init::Ones},
                                        {"model.layers.0.mlp.bias", {2}, ParamSpec::Init::Zeros}};
  const auto by_default = optimized_params(specs, false);
  EXPECT_TRUE(by_default[0].decay);
  EXPECT_FALSE(by_default[1].decay);
  EXPECT_FALSE(by_default[2].decay);
  for (const auto& p : optimized_params(specs, true)) EXPECT_TRUE(p.decay) << p.name;

  // A zero gradient leaves an undecayed tensor untouched and shrinks a decayed one by (1 - lr*wd).
  AdamW adamw(by_default, AdamWOptions{.weight_decay = 0.1});
  std::vector<float> embed(8, 1.0f), norm(2, 1.0f), bias(2, 1.0f), zeros8(8, 0.0f), zeros2(2, 0.0f);
  const std::vector<std::span<float>> params = {embed, norm, bias};
  const std::vector<std::span<const float>> grads = {zeros8, zeros2, zeros2};
  adamw.step(params, grads, 0.5);
  EXPECT_FLOAT_EQ(embed[0], 0.95f);
  EXPECT_EQ(norm[0], 1.0f);
  EXPECT_EQ(bias[1], 1.0f);
}

TEST(AdamW, RejectsBadHyperParameters) {
  EXPECT_THROW(AdamW({}, AdamWOptions{.beta1 = 1.0}), Error);
  EXPECT_THROW(AdamW({}, AdamWOptions{.eps = 0.0}), Error);
  EXPECT_THROW(AdamW({}, AdamWOptions{.weight_decay = -1.0}), Error);
}

TEST(AdamW, RestoredStateContinuesIdentically) {
  const std::vector<OptimizedParam> params = {{"a", {3}, true}, {"b", {2}, false}};
  AdamW first(params, {}), second(params, {});
  std::vector<float> a = {1, 2, 3}, b = {4, 5};
  const std::vector<float> ga = {0.1f, -0.2f, 0.3f}, gb = {0.5f, -0.5f};
  const std::vector<std::span<float>> ps = {a, b};
  const std::vector<std::span<const float>> gs = {ga, gb};
  first.step(ps, gs, 0.01);
  first.step(ps, gs, 0.02);

  // Copy the state out (as a checkpoint would) and into a fresh optimizer.
  std::map<std::string, std::vector<float>> saved;
  std::vector<NamedTensor> views;
  for (const NamedTensor& t : first.state_tensors()) {
    const float* data = static_cast<const float*>(t.view.data);
    saved[t.name].assign(data, data + t.view.numel());
    views.push_back({t.name, TensorView{DType::F32, t.view.shape, saved[t.name].data()}});
  }
  second.load_state(TensorStore::from_views(views, "saved state"), first.steps_taken());
  std::vector<float> a2 = a, b2 = b;
  const std::vector<std::span<float>> ps2 = {a2, b2};
  first.step(ps, gs, 0.03);
  second.step(ps2, gs, 0.03);
  EXPECT_EQ(a, a2);
  EXPECT_EQ(b, b2);

  std::vector<NamedTensor> missing(views.begin() + 1, views.end());
  try {
    second.load_state(TensorStore::from_views(missing, "partial state"), 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exp_avg.a"), std::string::npos) << e.what();
  }
}

TEST(GradClip, ScalesToTheMaxNormAndReportsTheNormBefore) {
  std::vector<float> g1 = {3.0f, 0.0f}, g2 = {4.0f};  // global norm 5
  const std::vector<std::span<float>> grads = {g1, g2};
  EXPECT_DOUBLE_EQ(clip_grad_global_norm(grads, 1.0), 5.0);
  const double scale = 1.0 / (5.0 + 1e-6);
  EXPECT_FLOAT_EQ(g1[0], float(3.0 * scale));
  EXPECT_FLOAT_EQ(g2[0], float(4.0 * scale));
  EXPECT_NEAR(std::hypot(g1[0], g2[0]), 1.0, 1e-6);

  std::vector<float> small = {0.3f, 0.4f};  // norm 0.5 < 1: untouched
  const std::vector<std::span<float>> small_grads = {small};
  EXPECT_NEAR(clip_grad_global_norm(small_grads, 1.0), 0.5, 1e-7);
  EXPECT_EQ(small[0], 0.3f);

  std::vector<float> bad = {NAN, 1.0f};
  const std::vector<std::span<float>> bad_grads = {bad};
  EXPECT_TRUE(std::isnan(clip_grad_global_norm(bad_grads, 1.0)));
  EXPECT_EQ(bad[1], 1.0f);
}

}  // namespace
}  // namespace jetmoe
