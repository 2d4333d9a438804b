// jetmoe bench: pp / tg tokens per second next to this machine's bounds (see runtime/bench).
#include <algorithm>
#include <iostream>
#include <thread>

#include "common.h"
#include "runtime/bench/bench.h"
#include "train/optimizer.h"

namespace jetmoe::cli {

namespace {

// The update of a `jetmoe train` step with the default training config: clip the global gradient
// norm to 1, then AdamW (default betas, eps and weight decay) at a fixed learning rate.
ParamUpdate clipped_adamw(const std::vector<ParamSpec>& specs) {
  auto adamw = std::make_shared<AdamW>(optimized_params(specs, /*decay_norms_and_biases=*/false), AdamWOptions{});
  return [adamw](std::span<const std::span<float>> params, std::span<const std::span<float>> grads, float grad_scale,
                  std::span<const std::span<uint16_t>> bf16_copies, ThreadPool& pool) {
    // As the trainer does: 1 / micro-batches and the clip factor are applied inside the fused,
    // threaded update, which also refreshes the bf16 compute copy.
    const std::vector<std::span<const float>> read_only(grads.begin(), grads.end());
    AdamW::GradScales scales;
    scales.first = grad_scale;  // 1 for a single micro-batch: an exact no-op
    scales.second = grad_clip_factor(grad_global_norm(read_only, pool, scales), 1.0);
    adamw->step(params, read_only, 1e-4, pool, scales, bf16_copies);
  };
}

}  // namespace

Command add_bench_command(CLI::App& parent) {
  struct Flags {
    BenchOptions options;
    std::vector<std::string> activations = {"f32"};
    size_t bandwidth_mib = 512;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  BenchOptions& o = flags->options;
  o.threads = {int(std::max(1u, std::thread::hardware_concurrency()))};
  CLI::App* app = parent.add_subcommand(
      "bench", "Measure prompt processing (pp) and generation (tg) tokens/s against the machine's bounds");
  app->add_option("-m,--model", o.models, "Checkpoint directory; repeat for several models")
      ->required()
      ->type_name("DIR");
  app->add_option("-t,--threads", o.threads, "Thread counts, comma-separated (e.g. 1,2)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app->add_option("-p,--n-prompt", o.n_prompt,
                  "Prompt tokens of the pp tests, comma-separated (e.g. 128,512): one test per entry; 0 = none")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  app->add_option("-n,--n-gen", o.n_gen,
                  "Generated tokens of the tg tests, comma-separated: one test per entry; 0 = none")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  app->add_option("-d,--depth", o.depths,
                  "Positions already in the KV cache when the pp / tg tests start, comma-separated (e.g. "
                  "0,4096): every test runs after each (named pp512 @ d4096); their bounds add the cached K/V "
                  "reads (tg) or attention products (pp)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  app->add_option("--train-batch", o.train_batch,
                  "Also time training steps (forward + backward + clipped AdamW update) of this many random "
                  "sequences on fp32 master copies of the weights; 0 = skip")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 16));
  app->add_option("--train-len", o.train_seq_len, "Tokens per sequence of the training test")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  app->add_option("--train-accum", o.train_micro_batches,
                  "Micro-batches of --train-batch sequences per training step, their gradients summed before "
                  "one update (the trainer's grad_accum)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  app->add_option("-r,--repetitions", o.reps, "Repetitions of each test (mean ± std over them)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app->add_option("-a,--activations", flags->activations,
                  "Activations of the weight products, comma-separated: f32 (exact) and/or bf16 (prefill on "
                  "bf16 dot products)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  add_cache_types_flag(*app, o.cache_types);
  app->add_option("--seed", o.seed, "Seed of the random token ids")->capture_default_str();
  app->add_option("--bandwidth-mib", flags->bandwidth_mib,
                  "Buffer read to measure memory bandwidth, MiB (well beyond the last-level cache)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  app->add_flag("--json", flags->json, "Print JSON instead of markdown tables");
  return {app, [flags] {
            BenchOptions& o = flags->options;
            const auto all_zero = [](const std::vector<int64_t>& v) {
              return std::all_of(v.begin(), v.end(), [](int64_t n) { return n == 0; });
            };
            if (all_zero(o.n_prompt) && all_zero(o.n_gen) && o.train_batch == 0)
              throw CLI::ValidationError("bench", "nothing to measure: -p 0, -n 0 and no --train-batch");
            for (const std::string& dir : o.models) check_model_dir(dir);
            o.bandwidth_bytes = flags->bandwidth_mib << 20;
            o.train_update = clipped_adamw;
            o.activations.clear();
            for (const std::string& a : flags->activations)
              o.activations.push_back(a == "bf16" ? ops::Activations::BF16 : ops::Activations::F32);
            const BenchReport report = run_bench(o, &std::cerr);
            std::cout << (flags->json ? bench_json(report) : bench_markdown(report));
          }};
}

}  // namespace jetmoe::cli
