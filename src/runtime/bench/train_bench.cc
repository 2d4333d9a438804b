#include "runtime/bench/train_bench.h"

#include <chrono>
#include <cmath>
#include <random>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/hf_config.h"
#include "model/gradients.h"
#include "model/model.h"

namespace jetmoe {

namespace {

using Clock = std::chrono::steady_clock;

// fp32 copies of every parameter of the checkpoint, in param_specs order.
std::vector<std::vector<float>> load_masters(const TensorStore& store, const std::vector<ParamSpec>& specs) {
  std::vector<std::vector<float>> masters;
  for (const ParamSpec& spec : specs) {
    const TensorView& v = store.get(spec.name);
    if (v.shape != spec.shape)
      fail(store.source(), ": tensor '", spec.name, "' is ", shape_str(v.shape), ", expected ", shape_str(spec.shape));
    masters.emplace_back(size_t(shape_numel(spec.shape)));
    to_f32(v.dtype, v.data, masters.back().data(), masters.back().size());
  }
  return masters;
}

}  // namespace

TrainBenchResult run_train_bench(const std::string& model_dir, const TrainBenchOptions& options,
                                 const ParamUpdateFactory& make_update, ThreadPool& pool) {
  if (options.batch < 1 || options.seq_len < 1 || options.reps < 1 || options.micro_batches < 1)
    fail("train bench: batch, sequence length, micro-batches and repetitions must be at least 1");
  const JetMoeConfig config = load_config(model_dir + "/config.json");
  if (options.seq_len > config.max_position_embeddings)
    fail("train bench: sequence length ", options.seq_len, " exceeds ", model_dir, "'s max_position_embeddings ",
         config.max_position_embeddings);
  const std::vector<ParamSpec> specs = param_specs(config);
  std::vector<std::vector<float>> masters = load_masters(TensorStore::open_dir(model_dir), specs);

  std::vector<NamedTensor> master_views;
  for (size_t i = 0; i < specs.size(); ++i)
    master_views.push_back({specs[i].name, TensorView{DType::F32, specs[i].shape, masters[i].data()}});
  const Model master_model(config, TensorStore::from_views(master_views, "fp32 master weights"));

  // compute_dtype bf16: a bf16 copy that forward and backward read, refreshed by each update.
  const bool bf16 = options.activations == ops::Activations::BF16;
  std::vector<std::vector<uint16_t>> copies;
  std::unique_ptr<Model> bf16_model;
  if (bf16) {
    std::vector<NamedTensor> views;
    for (size_t i = 0; i < specs.size(); ++i) {
      copies.emplace_back(masters[i].size());
      from_f32(DType::BF16, masters[i].data(), copies.back().data(), masters[i].size());
      views.push_back({specs[i].name, TensorView{DType::BF16, specs[i].shape, copies[i].data()}});
    }
    bf16_model = std::make_unique<Model>(config, TensorStore::from_views(views, "bf16 compute weights"));
    bf16_model->set_matmul_options({.activations = ops::Activations::BF16});
  }
  const Model& compute_model = bf16 ? *bf16_model : master_model;
  const ParamUpdate update = make_update(specs);

  std::mt19937_64 gen(options.seed);
  std::uniform_int_distribution<int32_t> id(0, int32_t(config.vocab_size - 1));
  // Every sequence of a step: micro-batch m's sequences are [m * batch, (m + 1) * batch).
  const size_t A = size_t(options.micro_batches), B = size_t(options.batch), T = size_t(options.seq_len);
  std::vector<std::vector<int32_t>> windows(A * B, std::vector<int32_t>(T + 1));
  std::vector<std::vector<int64_t>> labels(A * B);
  Gradients grads(config);
  std::vector<std::span<float>> param_spans, grad_spans;
  for (size_t i = 0; i < specs.size(); ++i) {
    param_spans.push_back(masters[i]);
    grad_spans.push_back(grads.tensor(i).values);
  }
  const std::vector<std::span<uint16_t>> copy_spans(copies.begin(), copies.end());

  TrainBenchResult result;
  result.tokens_per_step = options.micro_batches * options.batch * options.seq_len;
  for (int step = 0; step <= options.reps; ++step) {
    // The ids are drawn before the clock starts: the trainer's data pipeline is not timed here.
    std::vector<std::vector<TrainingSequence>> micro_batches(A);
    for (size_t s = 0; s < A * B; ++s) {
      for (int32_t& t : windows[s]) t = id(gen);
      labels[s].assign(windows[s].begin(), windows[s].end());  // T + 1: the last id is a target too
      micro_batches[s / B].push_back({std::span<const int32_t>(windows[s].data(), T), labels[s]});
    }
    const auto start = Clock::now();
    grads.zero(pool);
    double loss = 0;
    for (const std::vector<TrainingSequence>& batch : micro_batches)
      loss += forward_backward(compute_model, batch, options.loss, grads, pool).total;
    update(param_spans, grad_spans, float(1.0 / double(A)), copy_spans, pool);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    loss /= double(A);
    if (!std::isfinite(loss)) fail("train bench: the loss is ", loss, " at step ", step);
    if (step == 0) result.first_loss = loss;
    else result.step_seconds.push_back(seconds);
    result.last_loss = loss;
  }
  return result;
}

}  // namespace jetmoe
