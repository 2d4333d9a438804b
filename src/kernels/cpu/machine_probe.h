// The machine's limits, measured, for the roofline of `jetmoe bench`: how fast every pool thread
// together reads memory, and how many multiply-adds it does per second with fp32 FMA and (where
// the CPU has them) bf16 dot products. Best of several short runs: a bound, not a typical value.
#pragma once

#include <cstddef>

#include "core/parallel.h"
#include "kernels/cpu/isa.h"

namespace jetmoe::kernels::cpu {

// Bytes per second reading `bytes` of memory (much larger than the caches), split among the
// pool threads; best of `reps` passes after one that faults the pages in.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int reps, Isa isa = best_isa());

// Floating-point operations per second (a multiply-add counts 2) of fp32 FMA, or of bf16 dot
// products (0 when `isa` lacks them), on every pool thread at once; best of `reps` runs of about
// `seconds` each.
double measure_fma_peak(ThreadPool& pool, double seconds, int reps, Isa isa = best_isa());
double measure_bf16_dot_peak(ThreadPool& pool, double seconds, int reps, Isa isa = best_isa());

}  // namespace jetmoe::kernels::cpu
