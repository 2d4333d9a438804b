#include "runtime/bench/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <span>

#include "core/error.h"
#include "core/parallel.h"
#include "formats/model_files.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/machine_probe.h"
#include "model/model.h"
#include "runtime/bench/token_cost.h"

namespace jetmoe {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

MachineLimits measure_limits(ThreadPool& pool, const BenchOptions& options) {
  MachineLimits m;
  m.threads = pool.num_threads();
  m.read_bytes_per_s = kernels::cpu::measure_read_bandwidth(pool, options.bandwidth_bytes, 5);
  m.fma_flops = kernels::cpu::measure_fma_peak(pool, 0.05, 5);
  m.bf16_dot_flops = kernels::cpu::measure_bf16_dot_peak(pool, 0.05, 5);
  return m;
}

void fill_stats(BenchRow& row) {
  const double n = double(row.tokens_per_s.size());
  double sum = 0;
  for (double v : row.tokens_per_s) sum += v;
  row.mean = sum / n;
  double sq = 0;
  for (double v : row.tokens_per_s) sq += (v - row.mean) * (v - row.mean);
  row.stddev = n > 1 ? std::sqrt(sq / (n - 1)) : 0.0;
}

// The dtype holding most weight bytes, e.g. "BF16".
std::string main_dtype(const ModelWeights& w) {
  std::map<std::string, double> bytes;
  auto add = [&](const TensorView& v) { bytes[std::string(dtype_name(v.dtype))] += double(v.nbytes()); };
  add(w.embed);
  for (const LayerWeights& l : w.layers)
    for (const TensorView* v : {&l.attn_q, &l.attn_o, &l.kv_proj, &l.mlp_in, &l.mlp_out}) add(*v);
  return std::max_element(bytes.begin(), bytes.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
}

// Calls fn on every stored weight tensor once (a tied head is the embedding).
template <typename Fn>
void for_each_weight(const ModelWeights& w, Fn fn) {
  fn(w.embed);
  fn(w.final_norm);
  if (w.lm_head.data != w.embed.data) fn(w.lm_head);
  for (const LayerWeights& l : w.layers)
    for (const TensorView* v : {&l.input_norm, &l.attn_router, &l.attn_q, &l.attn_o, &l.attn_bias, &l.kv_proj,
                                &l.post_norm, &l.mlp_router, &l.mlp_in, &l.mlp_out, &l.mlp_bias})
      fn(*v);
}

double stored_bytes(const ModelWeights& w) {
  double total = 0;
  for_each_weight(w, [&](const TensorView& v) { total += double(v.nbytes()); });
  return total;
}

// Reads a byte of every page of the weights. A short warm-up run routes to only some experts, and the
// first repetition would otherwise pay the page faults (or the disk reads) of the rest.
void page_in_weights(const ModelWeights& w) {
  constexpr size_t kPage = 4096;
  unsigned sum = 0;
  for_each_weight(w, [&](const TensorView& v) {
    const auto* bytes = static_cast<const unsigned char*>(v.data);
    for (size_t i = 0; i < v.nbytes(); i += kPage) sum += bytes[i];
  });
  volatile unsigned keep = sum;
  (void)keep;
}

// Seconds of one prompt pass of `tokens` after the cache's first `depth` positions.
double time_prompt(const Model& model, KvCache& cache, int64_t depth, std::span<const int32_t> tokens,
                   ThreadPool& pool) {
  FloatTensor logits;
  cache.truncate(depth);
  const auto start = Clock::now();
  model.forward(tokens, cache, logits, pool, LogitsMode::Last);
  return seconds_since(start);
}

// Seconds of tokens.size() single-token steps after the cache's first `depth` positions.
double time_generation(const Model& model, KvCache& cache, int64_t depth, std::span<const int32_t> tokens,
                       ThreadPool& pool) {
  FloatTensor logits;
  cache.truncate(depth);
  const auto start = Clock::now();
  for (int32_t token : tokens)
    model.forward(std::span<const int32_t>(&token, 1), cache, logits, pool, LogitsMode::Last);
  return seconds_since(start);
}

const char* activations_name(ops::Activations a) { return a == ops::Activations::BF16 ? "bf16" : "f32"; }

std::string human_bytes(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1 << 30));
  return buf;
}

std::string human_params(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f B", double(n) / 1e9);
  return buf;
}

int64_t largest(const std::vector<int64_t>& values) {
  return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

// What one model run needs: the model, its cache, the token ids and the per-token costs. The
// tests of other lengths take prefixes of prompt and generated (the longest of each list).
struct ModelRun {
  Model& model;
  KvCache& cache;
  std::span<const int32_t> context;  // already in the cache when each pp / tg test starts
  std::span<const int32_t> prompt;
  std::span<const int32_t> generated;
  TokenCost cost;
};

// "pp512", or "pp512 @ d4096" after 4096 cached positions (llama-bench's names).
std::string test_name(const char* kind, int64_t tokens, int64_t depth) {
  std::string name = kind + std::to_string(tokens);
  if (depth > 0) name += " @ d" + std::to_string(depth);
  return name;
}

// Fills the cache with the run's context, once for all of its pp and tg repetitions (each
// truncates the cache back to it).
void fill_context(ModelRun& run, ThreadPool& pool) {
  run.cache.clear();
  if (run.context.empty()) return;
  FloatTensor logits;
  run.model.forward(run.context, run.cache, logits, pool, LogitsMode::Last);
}

// pp<n> at the run's depth: `reps` passes of the prompt's first n ids, against the peak bound.
BenchRow prompt_row(ModelRun& run, int64_t n, ThreadPool& pool, const MachineLimits& limits, BenchRow row,
                    const BenchOptions& options) {
  const int64_t depth = int64_t(run.context.size());
  row.test = test_name("pp", n, depth);
  row.tokens = n;
  for (int r = 0; r < options.reps; ++r)
    row.tokens_per_s.push_back(double(n) /
                               time_prompt(run.model, run.cache, depth, run.prompt.first(size_t(n)), pool));
  fill_stats(row);
  row.flops_per_token = run.cost.flops_per_prompt_token + double(depth) * run.cost.attention_flops_per_cached_position;
  row.bound_tokens_per_s = limits.best_flops() / row.flops_per_token;
  row.fraction_of_bound = row.mean / row.bound_tokens_per_s;
  row.fraction_of_fp32_peak = row.mean * row.flops_per_token / limits.fma_flops;
  return row;
}

// tg<n> at the run's depth: `reps` runs of n single-token steps, against the bandwidth bound.
BenchRow generation_row(ModelRun& run, int64_t n, ThreadPool& pool, MachineLimits& limits, BenchRow row,
                        const BenchOptions& options) {
  const int64_t depth = int64_t(run.context.size());
  row.test = test_name("tg", n, depth);
  row.tokens = n;
  // The read bandwidth moves while tests run (a 2-vCPU machine whose vCPUs share one core
  // complex or not reads ~45 or ~80 GB/s with 2 threads, and the host moves them), so every
  // repetition is measured against the better of the read probes right before and after it.
  const auto probe = [&] { return kernels::cpu::measure_read_bandwidth(pool, options.bandwidth_bytes, 2); };
  row.bytes_per_token =
      run.cost.weight_bytes_per_generated_token + double(depth) * run.cost.kv_bytes_per_cached_position;
  double before = probe(), bound_sum = 0, fraction_sum = 0;
  for (int r = 0; r < options.reps; ++r) {
    const double tokens_per_s =
        double(n) / time_generation(run.model, run.cache, depth, run.generated.first(size_t(n)), pool);
    const double after = probe();
    const double bound = std::max(before, after) / row.bytes_per_token;
    row.tokens_per_s.push_back(tokens_per_s);
    bound_sum += bound;
    fraction_sum += tokens_per_s / bound;
    limits.read_bytes_per_s = std::max({limits.read_bytes_per_s, before, after});
    before = after;
  }
  fill_stats(row);
  row.bound_tokens_per_s = bound_sum / options.reps;
  row.fraction_of_bound = fraction_sum / options.reps;
  return row;
}

// The pp and tg rows of one (model, threads, activations, cache type, depth) combination: one per
// non-zero entry of -p, then one per non-zero entry of -n.
void run_decoding_tests(ModelRun& run, ThreadPool& pool, MachineLimits& limits, BenchRow base,
                        const BenchOptions& options, BenchReport& report, std::ostream* log) {
  // Warm-up: pages the weights in and sizes every buffer once.
  page_in_weights(run.model.weights());
  const int64_t depth = int64_t(run.context.size());
  fill_context(run, pool);
  if (!run.prompt.empty()) time_prompt(run.model, run.cache, depth, run.prompt, pool);
  time_generation(run.model, run.cache, depth, run.generated.first(std::min<size_t>(4, run.generated.size())), pool);
  base.depth = depth;
  const auto add = [&](const BenchRow& row) {
    if (log) *log << "bench: " << row.test << " " << row.mean << " tokens/s\n";
    report.rows.push_back(row);
  };
  for (int64_t n : options.n_prompt)
    if (n > 0) add(prompt_row(run, n, pool, limits, base, options));
  for (int64_t n : options.n_gen)
    if (n > 0) add(generation_row(run, n, pool, limits, base, options));
}

// The training row of one (model, threads, activations) combination; its tapes keep F32 caches.
void run_training_test(const std::string& dir, const Model& model, ThreadPool& pool, const MachineLimits& limits,
                       BenchRow base, const BenchOptions& options, BenchReport& report, std::ostream* log) {
  TrainBenchOptions train;
  train.batch = options.train_batch;
  train.seq_len = options.train_seq_len;
  train.micro_batches = options.train_micro_batches;
  train.reps = options.reps;
  train.activations = model.matmul_options().activations;
  train.seed = options.seed;
  const TrainBenchResult timed = run_train_bench(dir, train, options.train_update, pool);
  BenchRow row = base;
  row.cache_type = kv_cache_type_name(DType::F32);
  row.test = "train" + std::to_string(train.batch) + "x" + std::to_string(train.seq_len);
  if (train.micro_batches > 1) row.test += "x" + std::to_string(train.micro_batches);
  row.tokens = timed.tokens_per_step;
  for (double seconds : timed.step_seconds) row.tokens_per_s.push_back(double(row.tokens) / seconds);
  fill_stats(row);
  row.flops_per_token = token_cost(model).flops_per_trained_token;
  row.bound_tokens_per_s = limits.best_flops() / row.flops_per_token;
  row.fraction_of_bound = row.mean / row.bound_tokens_per_s;
  row.fraction_of_fp32_peak = row.mean * row.flops_per_token / limits.fma_flops;
  row.loss_first = timed.first_loss;
  row.loss_last = timed.last_loss;
  if (log) *log << "bench: " << row.test << " " << row.mean << " tokens/s\n";
  report.rows.push_back(row);
}

}  // namespace

BenchReport run_bench(const BenchOptions& options, std::ostream* log) {
  if (options.models.empty()) fail("bench: no model given");
  if (options.threads.empty()) fail("bench: no thread count given");
  if (options.activations.empty()) fail("bench: no activation precision given");
  if (options.cache_types.empty()) fail("bench: no KV cache type given");
  for (DType type : options.cache_types)
    if (!is_kv_cache_type(type)) fail("bench: a KV cache holds F32 or F16, not ", dtype_name(type));
  if (options.reps < 1) fail("bench: repetitions must be at least 1, got ", options.reps);
  for (const std::vector<int64_t>* list : {&options.n_prompt, &options.n_gen, &options.depths})
    if (std::any_of(list->begin(), list->end(), [](int64_t n) { return n < 0; }))
      fail("bench: token counts and depths must not be negative");
  if (options.depths.empty()) fail("bench: no depth given");
  if (options.train_batch < 0 || options.train_seq_len < 1 || options.train_micro_batches < 1)
    fail("bench: bad training batch, sequence length or micro-batch count");
  if (options.train_batch > 0 && !options.train_update) fail("bench: the training test needs an optimizer update");
  BenchReport report;
  report.isa = std::string(kernels::cpu::isa_name(kernels::cpu::best_isa()));

  for (const std::string& dir : options.models) {
    ModelFiles files = open_model_files(dir);  // an HF-layout directory or a .gguf file
    const auto model = std::make_unique<Model>(files.config, std::move(files.store));
    const JetMoeConfig& c = model->config();
    const int64_t max_prompt = largest(options.n_prompt), max_gen = largest(options.n_gen);
    const int64_t max_depth = largest(options.depths);
    const int64_t positions = max_depth + std::max(max_prompt, max_gen);
    const int64_t longest = std::max(positions, options.train_batch > 0 ? options.train_seq_len : 0);
    if (longest > c.max_position_embeddings)
      fail("bench: ", longest, " tokens", max_depth > 0 ? " (with the depth)" : "", " exceed ", dir,
           "'s max_position_embeddings ", c.max_position_embeddings);
    std::mt19937_64 gen(options.seed);
    std::uniform_int_distribution<int32_t> id(0, int32_t(c.vocab_size - 1));
    std::vector<int32_t> context(static_cast<size_t>(max_depth)), prompt(static_cast<size_t>(max_prompt)),
        generated(static_cast<size_t>(max_gen));
    for (int32_t& t : prompt) t = id(gen);
    for (int32_t& t : generated) t = id(gen);
    for (int32_t& t : context) t = id(gen);  // after the others: the same seed keeps their ids
    const bool decoding_tests = max_prompt > 0 || max_gen > 0;

    BenchRow base;
    base.model = std::filesystem::path(dir).filename().string();
    if (base.model.empty()) base.model = std::filesystem::path(dir).parent_path().filename().string();
    base.weight_dtype = main_dtype(model->weights());
    base.file_type = files.file_type;
    base.weight_bytes = stored_bytes(model->weights());
    base.params = count_params(c).total;
    base.active_params = count_params(c).active;

    for (int threads : options.threads) {
      ThreadPool pool(threads);
      if (log) *log << "bench: " << base.model << ", " << threads << " thread(s): measuring the machine\n";
      MachineLimits limits = measure_limits(pool, options);
      base.threads = pool.num_threads();
      for (ops::Activations activations : options.activations) {
        model->set_matmul_options({activations});
        base.activations = activations_name(activations);
        for (DType cache_type : decoding_tests ? options.cache_types : std::vector<DType>{}) {
          KvCache cache = model->make_cache(std::max<int64_t>(positions, 1), cache_type);
          base.cache_type = kv_cache_type_name(cache_type);
          const TokenCost cost = token_cost(*model, cache_type);
          for (int64_t depth : options.depths) {
            ModelRun run{*model, cache, std::span(context).first(size_t(depth)), prompt, generated, cost};
            run_decoding_tests(run, pool, limits, base, options, report, log);
          }
        }
        if (options.train_batch > 0) run_training_test(dir, *model, pool, limits, base, options, report, log);
      }
      report.limits.push_back(limits);
    }
  }
  return report;
}

std::string bench_markdown(const BenchReport& report) {
  std::string out;
  char buf[512];
  out += "kernels: " + report.isa + "\n\n";
  out += "| threads | read GB/s | fp32 FMA GFLOP/s | bf16 dot GFLOP/s |\n| ---: | ---: | ---: | ---: |\n";
  for (const MachineLimits& m : report.limits) {
    const std::string bf16 = m.bf16_dot_flops > 0 ? std::to_string(int64_t(m.bf16_dot_flops / 1e9)) : "-";
    std::snprintf(buf, sizeof buf, "| %d | %.1f | %.0f | %s |\n", m.threads, m.read_bytes_per_s / 1e9,
                  m.fma_flops / 1e9, bf16.c_str());
    out += buf;
  }
  out += "\n| model | type | size | params (active) | threads | act | cache | test | t/s | bound t/s | % of bound |\n";
  out += "| --- | --- | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: |\n";
  for (const BenchRow& r : report.rows) {
    const std::string params = human_params(r.params) + " (" + human_params(r.active_params) + ")";
    std::snprintf(buf, sizeof buf, "| %s | %s | %s | %s | %d | %s | %s | %s | %.2f ± %.2f | %.2f | %.1f%% |\n",
                  r.model.c_str(), (r.file_type.empty() ? r.weight_dtype : r.file_type).c_str(),
                  human_bytes(r.weight_bytes).c_str(), params.c_str(),
                  r.threads, r.activations.c_str(), r.cache_type.c_str(), r.test.c_str(),
                  r.mean, r.stddev, r.bound_tokens_per_s, 100.0 * r.fraction_of_bound);
    out += buf;
  }
  out += "\nBounds: tg = read bandwidth / weight bytes per token, each repetition against the better read probe "
         "right before or after it (the table above: the best probe of the run); pp = the best multiply-add peak "
         "(bf16 dot where the CPU has it) / (2 x active non-embedding parameters) per token; train = that peak / "
         "(6 x (those parameters + the head)) per token; @ dN: after N positions already in the KV cache, whose "
         "K/V reads (tg) or attention products (pp) the bound adds. act: activations of the products (bf16 = "
         "prefill and training products with BF16 weights, and prefill attention, on bf16 dot products). cache: "
         "the KV cache's element type (f16 halves the K/V bytes a tg bound adds per cached position; training "
         "keeps f32).\n";
  return out;
}

std::string bench_json(const BenchReport& report) {
  nlohmann::json j;
  j["isa"] = report.isa;
  j["machine"] = nlohmann::json::array();
  for (const MachineLimits& m : report.limits)
    j["machine"].push_back({{"threads", m.threads},
                            {"read_bytes_per_s", m.read_bytes_per_s},
                            {"fma_flops", m.fma_flops},
                            {"bf16_dot_flops", m.bf16_dot_flops}});
  j["results"] = nlohmann::json::array();
  for (const BenchRow& r : report.rows) {
    nlohmann::json row = {{"model", r.model},
                          {"weight_dtype", r.weight_dtype},
                          {"file_type", r.file_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.file_type)},
                          {"weight_bytes", r.weight_bytes},
                          {"params", r.params},
                          {"active_params", r.active_params},
                          {"threads", r.threads},
                          {"activations", r.activations},
                          {"cache_type", r.cache_type},
                          {"test", r.test},
                          {"tokens", r.tokens},
                          {"depth", r.depth},
                          {"tokens_per_s", r.tokens_per_s},
                          {"mean_tokens_per_s", r.mean},
                          {"stddev_tokens_per_s", r.stddev},
                          {"bound_tokens_per_s", r.bound_tokens_per_s},
                          {"fraction_of_bound", r.fraction_of_bound}};
    if (r.test.rfind("pp", 0) == 0 || r.test.rfind("train", 0) == 0) {
      row["flops_per_token"] = r.flops_per_token;
      row["fraction_of_fp32_peak"] = r.fraction_of_fp32_peak;
    }
    if (r.test.rfind("tg", 0) == 0) row["bytes_per_token"] = r.bytes_per_token;
    if (r.test.rfind("train", 0) == 0) {
      row["loss_first"] = r.loss_first;
      row["loss_last"] = r.loss_last;
    }
    j["results"].push_back(row);
  }
  return j.dump(2) + "\n";
}

}  // namespace jetmoe
