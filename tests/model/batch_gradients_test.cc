// The backward of a whole batch, whose sequences are stacked into shared products:
//  - its gradients do not depend on the number of threads, bit for bit: every sum runs in an
//    order fixed by the data, never by how work is shared (what makes a resumed run reproduce an
//    uninterrupted one on any machine);
//  - without the auxiliary losses (the only terms that couple sequences) the batch gradient is the
//    token-weighted mean of each sequence's own gradient, also when the head's backward is cut
//    into several chunks of sequences;
//  - a step that reuses the buffers earlier steps recorded (of other lengths, batch sizes or
//    models) gives the same bits as forwards onto fresh tapes.
// The model is big enough that its products are cut into several blocks of rows and columns, and
// the sequences differ in length.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <utility>

#include "core/error.h"
#include "model/backward.h"
#include "model/model.h"
#include "runtime/random_checkpoint.h"

namespace jetmoe {
namespace {

JetMoeConfig blocky_model(int64_t layers = 2) {
  JetMoeConfig c;
  c.vocab_size = 300;
  c.hidden_size = 200;  // > one 128 / 256-column block of the backward products
  c.num_layers = layers;
  c.num_experts = 4;
  c.top_k = 2;
  c.num_kv_heads = 3;
  c.head_dim = 20;
  c.intermediate_size = 150;  // W_in has 300 rows: two 192-row blocks of its weight gradient
  c.max_position_embeddings = 800;
  c.initializer_range = 0.2;  // big enough that routing and losses are far from uniform
  c.torch_dtype = DType::F32;
  return c;
}

// A model over random weights it owns.
struct RandomModel {
  JetMoeConfig config;
  std::vector<std::vector<float>> values = random_parameter_values(config, 3);
  std::unique_ptr<Model> model;
  explicit RandomModel(JetMoeConfig c = blocky_model()) : config(c) {
    const std::vector<ParamSpec> specs = param_specs(config);
    std::vector<NamedTensor> views;
    for (size_t i = 0; i < specs.size(); ++i)
      views.push_back({specs[i].name, TensorView{DType::F32, specs[i].shape, values[i].data()}});
    model = std::make_unique<Model>(config, TensorStore::from_views(views, "random weights"));
  }
};

// Random sequences of the given lengths, each with one ignored label.
struct RandomBatch {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<int64_t>> labels;
  RandomBatch(std::initializer_list<int64_t> lengths, int32_t vocab) {
    std::mt19937 gen(11);
    std::uniform_int_distribution<int32_t> id(0, vocab - 1);
    for (int64_t T : lengths) {
      tokens.emplace_back(size_t(T));
      for (int32_t& t : tokens.back()) t = id(gen);
      labels.emplace_back(tokens.back().begin(), tokens.back().end());
      labels.back()[size_t(T / 2)] = -100;
    }
  }
  std::vector<TrainingSequence> sequences(size_t first, size_t last) const {
    std::vector<TrainingSequence> out;
    for (size_t b = first; b < last; ++b) out.push_back({tokens[b], labels[b]});
    return out;
  }
};

void expect_same_bits(const Gradients& got, const Gradients& want, const std::vector<ParamSpec>& specs,
                      const std::string& what) {
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::vector<float>& a = got.tensor(i).values;
    const std::vector<float>& b = want.tensor(i).values;
    ASSERT_EQ(a.size(), b.size()) << specs[i].name;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << specs[i].name << " " << what;
  }
}

TEST(BatchGradients, StepsThatReuseEarlierRecordsGiveTheBitsOfFreshTapes) {
  const RandomModel m;
  const std::vector<ParamSpec> specs = param_specs(m.config);
  const RandomBatch data({97, 5, 128}, int32_t(m.config.vocab_size));
  const std::vector<TrainingSequence> batch = data.sequences(0, 3);
  ThreadPool pool(2);

  // Reference: each sequence forwarded onto a fresh tape, logits and cache.
  std::vector<ForwardTape> tapes(batch.size());
  std::vector<FloatTensor> logits(batch.size());
  std::vector<std::span<const int64_t>> labels;
  for (size_t b = 0; b < batch.size(); ++b) {
    KvCache cache = m.model->make_cache(int64_t(batch[b].tokens.size()));
    m.model->forward(batch[b].tokens, cache, logits[b], pool, LogitsMode::All, nullptr, &tapes[b]);
    labels.push_back(batch[b].labels);
  }
  Gradients want(m.config);
  const LossTerms want_terms = backward(m.config, m.model->weights(), tapes, logits, labels, LossOptions{}, want, pool);

  // Steps before it leave records of other shapes: a model of one layer with narrower KV rows
  // over more and longer sequences, then a smaller batch of this model.
  JetMoeConfig shallow = blocky_model(1);
  shallow.head_dim = 12;
  const RandomModel other(shallow);
  const RandomBatch longer({300, 200, 150, 20}, int32_t(other.config.vocab_size));
  Gradients other_grads(other.config), scratch(m.config);
  forward_backward(*other.model, longer.sequences(0, 4), LossOptions{}, other_grads, pool);
  for (const auto& [first, last] : {std::pair<size_t, size_t>{0, 3}, {1, 2}}) {
    forward_backward(*m.model, data.sequences(first, last), LossOptions{}, scratch, pool);
    Gradients got(m.config);
    const LossTerms terms = forward_backward(*m.model, batch, LossOptions{}, got, pool);
    EXPECT_EQ(terms.total, want_terms.total);
    expect_same_bits(got, want, specs, str_cat("after a step over sequences [", first, ", ", last, ")"));
  }
}

TEST(BatchGradients, EveryThreadCountGivesTheSameBits) {
  const RandomModel m;
  const Model& model = *m.model;
  const JetMoeConfig& config = m.config;
  const std::vector<ParamSpec> specs = param_specs(config);
  const RandomBatch data({97, 5, 128}, int32_t(config.vocab_size));
  const std::vector<TrainingSequence> batch = data.sequences(0, 3);

  std::vector<Gradients> grads;
  std::vector<LossTerms> terms;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    grads.emplace_back(config);
    terms.push_back(forward_backward(model, batch, LossOptions{}, grads.back(), pool));
  }
  for (size_t run = 1; run < grads.size(); ++run) {
    EXPECT_EQ(terms[run].total, terms[0].total) << "run " << run;
    EXPECT_EQ(terms[run].ce, terms[0].ce) << "run " << run;
    for (size_t i = 0; i < specs.size(); ++i) {
      const std::vector<float>& a = grads[0].tensor(i).values;
      const std::vector<float>& b = grads[run].tensor(i).values;
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << specs[i].name << " run " << run;
    }
  }
  double largest = 0.0;  // the gradients are not trivially zero
  for (float g : grads[0].get("model.layers.1.mlp.input_linear.weight").values)
    largest = std::max(largest, double(std::fabs(g)));
  EXPECT_GT(largest, 1e-6);
}

TEST(BatchGradients, WithoutAuxiliaryLossesTheBatchIsTheTokenWeightedMeanOfItsSequences) {
  const RandomModel m;
  const std::vector<ParamSpec> specs = param_specs(m.config);
  // 700 + 400 rows do not fit one head chunk (1024 rows); 400 + 40 share one.
  const RandomBatch data({700, 400, 40}, int32_t(m.config.vocab_size));
  const LossOptions ce_only{.aux_coef = 0.0, .z_coef = 0.0};
  ThreadPool pool(2);
  Gradients whole(m.config);
  const LossTerms terms = forward_backward(*m.model, data.sequences(0, 3), ce_only, whole, pool);
  // sum_b n_b * (gradient of sequence b's mean loss) / sum_b n_b, in double.
  std::vector<std::vector<double>> mean(specs.size());
  double ce = 0.0;
  for (size_t b = 0; b < 3; ++b) {
    Gradients one(m.config);
    const LossTerms t = forward_backward(*m.model, data.sequences(b, b + 1), ce_only, one, pool);
    const double weight = double(t.scored_tokens) / double(terms.scored_tokens);
    ce += weight * t.ce;
    for (size_t i = 0; i < specs.size(); ++i) {
      mean[i].resize(one.tensor(i).values.size());
      for (size_t j = 0; j < mean[i].size(); ++j) mean[i][j] += weight * one.tensor(i).values[j];
    }
  }
  EXPECT_NEAR(terms.ce, ce, 1e-12 * ce);
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::vector<float>& got = whole.tensor(i).values;
    double scale = 0.0;
    for (double v : mean[i]) scale = std::max(scale, std::fabs(v));
    // fp32 sums of up to ~1000 terms in different orders: ~1e-6 of the tensor's largest entry.
    for (size_t j = 0; j < got.size(); ++j)
      ASSERT_NEAR(got[j], mean[i][j], 2e-5 * scale + 1e-12) << specs[i].name << " [" << j << "]";
  }
}

}  // namespace
}  // namespace jetmoe
