// `jetmoe bench`: prompt processing (pp) and generation (tg) speed in the spirit of llama-bench,
// each next to the bound this machine sets for it, measured in the same run: generation against
// the memory read bandwidth (weight bytes per token), prompt processing against the peak
// multiply-add rate (2 x active parameters per token).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/ops.h"
#include "runtime/bench/train_bench.h"

namespace jetmoe {

struct BenchOptions {
  std::vector<std::string> models;  // checkpoint directories
  std::vector<int> threads;         // one pool per entry
  // How products treat activations (ops::Activations), one set of runs per entry.
  std::vector<ops::Activations> activations = {ops::Activations::F32};
  // KV cache element types (F32, F16), one set of pp / tg runs per entry. Training keeps F32.
  std::vector<DType> cache_types = {DType::F32};
  // As llama-bench's -p / -n / -d lists: one pp<n> test (one forward of n tokens) per n_prompt
  // entry and one tg<n> test (n single-token forwards) per n_gen entry, zeros skipped; each of
  // them after every entry of depths positions already in the KV cache ("pp512 @ d4096"). Training
  // ignores the depths.
  std::vector<int64_t> n_prompt = {512};
  std::vector<int64_t> n_gen = {128};
  std::vector<int64_t> depths = {0};
  // train<B>x<T>: training steps (forward + backward + optimizer update, train_bench.h) of
  // train_batch random sequences of train_seq_len tokens; 0 = skip. Needs train_update.
  int64_t train_batch = 0;
  int64_t train_seq_len = 128;
  int64_t train_micro_batches = 1;  // per step, as the trainer's grad_accum: test train<B>x<T>x<A>
  ParamUpdateFactory train_update;
  int reps = 5;
  size_t bandwidth_bytes = size_t(512) << 20;  // buffer read to measure bandwidth (>> last-level cache)
  uint64_t seed = 1;                           // of the random token ids
};

// This machine's limits with `threads` threads, measured just before that thread count's runs.
struct MachineLimits {
  int threads = 0;
  double read_bytes_per_s = 0;  // the best of that probe and those around each tg repetition
  double fma_flops = 0;       // fp32 FMA
  double bf16_dot_flops = 0;  // 0 where the CPU has no bf16 dot products
  double best_flops() const { return bf16_dot_flops > fma_flops ? bf16_dot_flops : fma_flops; }
};

struct BenchRow {
  std::string model;        // directory name
  std::string weight_dtype; // dtype of most weight bytes
  std::string file_type;    // a GGUF file's type by llama.cpp's name ("Q4_K_M"); "" for a directory
  double weight_bytes = 0;  // all stored weights
  int64_t params = 0, active_params = 0;
  int threads = 0;
  std::string activations;  // "f32" or "bf16"
  std::string cache_type;   // of the KV cache: "f32" or "f16" (train: always "f32")
  std::string test;         // "pp512", "tg128", "pp512 @ d4096", "train4x128"
  int64_t tokens = 0;
  int64_t depth = 0;        // pp, tg: positions in the KV cache before the test's tokens
  std::vector<double> tokens_per_s;  // one per repetition
  double mean = 0, stddev = 0;
  // tg: bandwidth / weight bytes per token (the mean over repetitions of the bound each was
  // measured against); pp: best peak / flops per token; train: best peak / (3 x the pp flops per
  // token: forward, and backward's two products per weight product; plus the head's, which
  // training runs for every token). At a depth, tg adds the cached positions' K/V bytes and pp
  // their attention FLOPs (TokenCost); the test's own positions are not counted, as at depth 0.
  double bound_tokens_per_s = 0;
  double bytes_per_token = 0;     // tg: what its bound divides the read bandwidth by
  double flops_per_token = 0;     // pp, train: what their bounds divide the peak by
  double fraction_of_bound = 0;   // pp, train: mean / bound; tg: the mean of each repetition's fraction
  double fraction_of_fp32_peak = 0;  // pp and train
  double loss_first = 0, loss_last = 0;  // train: training loss of the warm-up and the last step
};

struct BenchReport {
  std::string isa;  // the kernels that ran
  std::vector<MachineLimits> limits;
  std::vector<BenchRow> rows;
};

// Runs every model x thread count x test; progress lines go to `log` when given.
BenchReport run_bench(const BenchOptions& options, std::ostream* log);

std::string bench_markdown(const BenchReport& report);
std::string bench_json(const BenchReport& report);

}  // namespace jetmoe
