// What quantization costs a trained model on held-out text, with a stated bound: a small JetMoE
// (every row a multiple of 32, so every matrix is quantized) learns a synthetic language, then
// its GGUF exports at F32, Q8_0 and Q4_0 (what `jetmoe quantize` writes) score fresh text of
// that language with compute_perplexity. Stated bounds: Q8_0 within 1% and Q4_0 within 5% of
// the F32 file's perplexity (measured: see the printed line). A wider model (every row a
// multiple of 256) does the same for Q4_K_S / Q4_K_M, Q5_K_S / Q5_K_M and Q6_K: within 3%, 1%
// and 1% of F32. A broken
// quantized path (a wrong scale, a wrong nibble order) scores near the vocabulary size instead.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>

#include "formats/gguf_export.h"
#include "formats/gguf_file_type.h"
#include "model/backward.h"
#include "model/model.h"
#include "runtime/perplexity.h"
#include "runtime/random_checkpoint.h"
#include "train/optimizer.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;

JetMoeConfig small_config() {
  JetMoeConfig c;
  c.vocab_size = 64;
  c.hidden_size = 64;
  c.num_layers = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.intermediate_size = 64;
  c.max_position_embeddings = 64;
  c.initializer_range = 0.02;
  c.torch_dtype = DType::F32;
  validate_config(c, "quantized perplexity test config");
  return c;
}

// Rows of 256 everywhere (hidden, heads x head_dim, FFN), so that a Q4_K / Q5_K file stores every
// matrix but the tied embedding / head (Q8_0) as the k-quant.
JetMoeConfig wide_config() {
  JetMoeConfig c = small_config();
  c.hidden_size = 256;
  c.head_dim = 128;
  c.intermediate_size = 256;
  validate_config(c, "quantized perplexity test config (Q4_K)");
  return c;
}

// The language: after token t comes (5 t + 3) mod 61 + 3 nine times in ten, else a random one.
std::vector<int32_t> sample_text(std::mt19937& gen, int64_t length) {
  std::uniform_int_distribution<int32_t> any(3, 63);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::vector<int32_t> text{1, any(gen)};
  while (int64_t(text.size()) < length)
    text.push_back(coin(gen) < 0.9 ? (5 * text.back() + 3) % 61 + 3 : any(gen));
  return text;
}

// Trains a model of `config` for `steps` steps on the language, exports it at each of `types`
// and returns each file's held-out perplexity, on a KV cache of `cache_type`.
// Keyed by file type name ("F32", "Q4_K_M", ...).
std::map<std::string, double> trained_perplexities(const JetMoeConfig& config, int steps,
                                                   std::initializer_list<GgufFileType> types,
                                                   DType cache_type = DType::F32) {
  const std::vector<ParamSpec> specs = param_specs(config);
  std::vector<std::vector<float>> values = random_parameter_values(config, 11);
  std::vector<NamedTensor> views;
  for (size_t i = 0; i < specs.size(); ++i)
    views.push_back({specs[i].name, TensorView{DType::F32, specs[i].shape, values[i].data()}});
  const Model model(config, TensorStore::from_views(views, "trained weights"));

  // Train: 8 sequences of 48 tokens per step, AdamW, the model reading the weights in place.
  ThreadPool pool(2);
  AdamWOptions adam;
  adam.weight_decay = 0.0;
  AdamW optimizer(optimized_params(specs, false), adam);
  std::mt19937 gen(5);
  for (int step = 0; step < steps; ++step) {
    std::vector<std::vector<int32_t>> texts;
    std::vector<std::vector<int64_t>> labels;
    for (int b = 0; b < 8; ++b) {
      texts.push_back(sample_text(gen, 48));
      labels.emplace_back(texts.back().begin(), texts.back().end());
    }
    std::vector<TrainingSequence> batch;
    for (size_t b = 0; b < texts.size(); ++b) batch.push_back({texts[b], labels[b]});
    Gradients grads(config);
    forward_backward(model, batch, LossOptions{}, grads, pool);
    std::vector<std::span<float>> params;
    std::vector<std::span<const float>> gradients;
    for (size_t i = 0; i < values.size(); ++i) {
      params.emplace_back(values[i]);
      gradients.emplace_back(grads.tensor(i).values);
    }
    optimizer.step(params, gradients, 1e-2);
  }

  const fs::path dir = fs::temp_directory_path() / ("jetmoe_quant_ppl_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const TensorStore store = TensorStore::from_views(views, "trained weights");
  std::vector<std::string> names;
  for (const ParamSpec& spec : specs) names.push_back(spec.name);
  std::mt19937 held_out_gen(99);  // text the training never saw
  const std::vector<int32_t> held_out = sample_text(held_out_gen, 2048);

  std::map<std::string, double> ppl;
  for (GgufFileType type : types) {
    const std::string name = gguf_file_type_name(type);
    const std::string path = (dir / (name + ".gguf")).string();
    GgufExportOptions options;
    options.type = type;
    options.name = "quantized-perplexity-test";
    write_gguf_export(path, config, store, plan_gguf_export(config, store, names, type), options, pool);
    const std::unique_ptr<Model> loaded = Model::load(path);
    if (type.weights != DType::F32) {
      EXPECT_EQ(loaded->weights().layers[0].mlp_in.dtype, type.weights);
    }
    PerplexityOptions ppl_options;
    ppl_options.context = 64;
    ppl_options.cache_type = cache_type;
    ppl[name] = compute_perplexity(*loaded, held_out, ppl_options, pool).perplexity;
  }
  fs::remove_all(dir);
  return ppl;
}

TEST(QuantizedPerplexity, QuantizedFilesStayWithinTheStatedBoundOfF32) {
  std::map<std::string, double> ppl = trained_perplexities(small_config(), 120, {DType::F32, DType::Q8_0, DType::Q4_0});
  auto change = [&](const std::string& t) { return ppl[t] / ppl["F32"] - 1; };
  std::cout << "[ measured ] held-out perplexity F32 " << ppl["F32"] << ", Q8_0 " << ppl["Q8_0"] << " ("
            << 100 * change("Q8_0") << "%), Q4_0 " << ppl["Q4_0"] << " (" << 100 * change("Q4_0") << "%)\n";
  // The model learned the language: far below the vocabulary's 64 (the noise alone allows ~2).
  EXPECT_LT(ppl["F32"], 6.0);
  EXPECT_LT(std::fabs(change("Q8_0")), 0.01);
  EXPECT_LT(std::fabs(change("Q4_0")), 0.05);
}

// The k-quants and their _M mixes on the wider model (Q4_0 alongside, for comparison on the same
// weights).
TEST(QuantizedPerplexity, KQuantFilesStayWithinTheStatedBoundOfF32) {
  std::map<std::string, double> ppl = trained_perplexities(
      wide_config(), 120, {DType::F32, DType::Q6_K, kQ5KMedium, DType::Q5_K, kQ4KMedium, DType::Q4_K, DType::Q4_0});
  std::cout << "[ measured ] held-out perplexity F32 " << ppl["F32"];
  for (const auto& [name, value] : ppl) {
    if (name != "F32") std::cout << ", " << name << " " << value << " (" << 100 * (value / ppl["F32"] - 1) << "%)";
  }
  std::cout << "\n";
  auto change = [&](const std::string& t) { return std::fabs(ppl[t] / ppl["F32"] - 1); };
  EXPECT_LT(ppl["F32"], 6.0);
  EXPECT_LT(change("Q4_K_S"), 0.03);
  EXPECT_LT(change("Q4_K_M"), 0.03);
  EXPECT_LT(change("Q5_K_S"), 0.01);
  EXPECT_LT(change("Q5_K_M"), 0.01);
  EXPECT_LT(change("Q6_K"), 0.01);
}

// The f16 KV cache (--cache-type f16) on the same trained model: K and V rounded to 2^-11 of
// themselves move the held-out perplexity far less than Q8_0 weights do.
TEST(QuantizedPerplexity, F16KvCacheStaysWithinTheStatedBoundOfF32) {
  const double f32 = trained_perplexities(small_config(), 120, {DType::F32}).at("F32");
  const double f16 = trained_perplexities(small_config(), 120, {DType::F32}, DType::F16).at("F32");
  const double change = f16 / f32 - 1;
  std::cout << "[ measured ] held-out perplexity, f32 KV cache " << f32 << ", f16 KV cache " << f16 << " ("
            << 100 * change << "%)\n";
  EXPECT_LT(f32, 6.0);
  EXPECT_LT(std::fabs(change), 0.002);
  EXPECT_NE(change, 0.0) << "the f16 cache did not round anything";
}

}  // namespace
}  // namespace jetmoe
