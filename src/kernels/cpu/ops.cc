// ops.h on the CPU: checks shapes, cuts each op into tiles, shares them among the pool threads
// (work_queue.h) and runs every tile on the kernel table of the chosen ISA. Compiled for the
// baseline ISA: only the table's functions use wider instructions.
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/work_queue.h"

namespace jetmoe::ops {
namespace {

using kernels::cpu::KernelTable;
using kernels::cpu::QuantizedRows;
using kernels::cpu::WeightMatrix;

WeightMatrix weight_matrix(const TensorView& W) {
  JM_CHECK(W.shape.size() == 2, "matmul weight must be 2-D, got ", shape_str(W.shape));
  return WeightMatrix{W.data, W.dtype, W.shape[0], W.shape[1]};
}

// A decoding call's weights are cut into about kGemvTilesPerThread tiles per thread, each
// between kGemvMinTileBytes and kGemvMaxTileBytes. Every tile restarts a weight stream and takes
// a counter another core just wrote: at 64 KB tiles that cost a third of the decode rate of
// 4-bit weights when the machine reads ~80 GB/s (Zen 5, 2 threads); 1 MB tiles ran best, while
// several tiles per thread keep a late-waking thread from leaving all the work to the other.
// Prefill tiles are 128 output columns (a multiple of every ISA's panel width).
constexpr int64_t kGemvTilesPerThread = 8;
constexpr int64_t kGemvMinTileBytes = 64 * 1024;
constexpr int64_t kGemvMaxTileBytes = 1024 * 1024;
constexpr int64_t kGemmTileCols = 128;
// Element-wise ops smaller than this run on the calling thread (waking the pool costs ~10 us).
constexpr int64_t kParallelElements = 1 << 16;

// A job's rows ready for the kernels: fp32 as given, rounded to bf16 (packed into token panels
// for the dot-product kernel, or kept as fp32 values for the others), or quantized to 8-bit
// blocks for quantized weights.
struct PreparedJob {
  const MatmulJob* job;
  WeightMatrix W;
  bool gemv;
  const float* x;                // fp32 rows the gemv / gemm kernels read
  int64_t ldx;
  bool bf16_dot = false;         // runs on gemm_bf16dot
  std::vector<float> x_panels;   // rows rounded to bf16 and packed when gemm_bf16dot runs this job
  std::vector<float> x_rounded;  // [rows, in] bf16-rounded rows when it cannot
  std::vector<int8_t> q8;        // Q8_0 / Q4_0 / k-quant weights: [rows, in] levels
  std::vector<float> q8_scale;   // [rows, in / 32]
  std::vector<int32_t> q8_sum;   // [rows, in / 32]

  bool quantized() const { return dtype_is_quantized(W.dtype); }
  QuantizedRows quantized_rows() const {
    return QuantizedRows{q8.data(), q8_scale.data(), q8_sum.data(), job->rows, W.cols};
  }
};

// Quantizes the rows of every job with quantized weights; rows shared among the threads when
// there are enough of them to pay for waking the pool.
void quantize_activations(std::vector<PreparedJob>& prepared, const KernelTable& kt, ThreadPool& pool) {
  std::vector<PreparedJob*> jobs;
  std::vector<int64_t> first_row{0};  // prefix sums of the jobs' rows
  for (PreparedJob& p : prepared) {
    if (!p.quantized()) continue;
    const int64_t rows = p.job->rows, cols = p.W.cols;
    p.q8.resize(size_t(rows * cols));
    p.q8_scale.resize(size_t(rows * cols / kQuantBlock));
    p.q8_sum.resize(p.q8_scale.size());
    jobs.push_back(&p);
    first_row.push_back(first_row.back() + rows);
  }
  const auto quantize = [&](int64_t begin, int64_t end) {
    size_t j = size_t(std::upper_bound(first_row.begin(), first_row.end(), begin) - first_row.begin() - 1);
    for (int64_t i = begin; i < end; ++i) {
      while (i >= first_row[j + 1]) ++j;
      PreparedJob& p = *jobs[j];
      const int64_t t = i - first_row[j], cols = p.W.cols, blocks = cols / kQuantBlock;
      kt.quantize_row_q8(p.job->x + t * p.job->x_stride, cols, p.q8.data() + t * cols, p.q8_scale.data() + t * blocks,
                         p.q8_sum.data() + t * blocks);
    }
  };
  const int64_t rows = first_row.back();
  if (rows == 0) return;
  int64_t values = 0;
  for (const PreparedJob* p : jobs) values += p->job->rows * p->W.cols;
  if (values < kParallelElements) quantize(0, rows);
  else pool.parallel_for(rows, quantize);
}

// Rounds to bf16 and packs the rows of every job that runs on bf16 dot products: one token
// panel per item, all jobs' items shared among the threads in one pass.
void pack_bf16_activations(std::vector<PreparedJob>& prepared, const KernelTable& kt, ThreadPool& pool) {
  using kernels::cpu::kBf16TokenPanel;
  struct Panel {
    PreparedJob* job;
    int64_t t0;
  };
  std::vector<Panel> panels;
  for (PreparedJob& p : prepared) {
    if (!p.bf16_dot) continue;
    const int64_t count = (p.job->rows + kBf16TokenPanel - 1) / kBf16TokenPanel;
    p.x_panels.resize(size_t(count * (p.W.cols / 2) * kBf16TokenPanel));
    for (int64_t q = 0; q < count; ++q) panels.push_back({&p, q * kBf16TokenPanel});
  }
  kernels::cpu::for_each_item(pool, int64_t(panels.size()), 0, [&](int64_t i, float*) {
    const Panel& panel = panels[size_t(i)];
    const MatmulJob& job = *panel.job->job;
    const int64_t pairs = panel.job->W.cols / 2;
    kt.pack_bf16_tokens(job.x + panel.t0 * job.x_stride, job.x_stride,
                        std::min(kBf16TokenPanel, job.rows - panel.t0), pairs,
                        panel.job->x_panels.data() + panel.t0 * pairs);
  });
}

// Bytes of weights per decoding tile for these jobs (see kGemvTilesPerThread).
int64_t gemv_tile_bytes_for(const std::vector<PreparedJob>& prepared, int threads) {
  int64_t bytes = 0;
  for (const PreparedJob& p : prepared)
    if (p.gemv) bytes += int64_t(dtype_bytes(p.W.dtype, p.W.rows * p.W.cols));
  return std::clamp(bytes / (threads * kGemvTilesPerThread), kGemvMinTileBytes, kGemvMaxTileBytes);
}

// The table's decoding and prefill products for quantized weights of type t.
struct QuantizedProducts {
  decltype(KernelTable::gemv_q8) gemv;
  decltype(KernelTable::gemm_q8) gemm;
};
QuantizedProducts quantized_products(const KernelTable& kt, DType t) {
  switch (t) {
    case DType::Q4_K: return {kt.gemv_q4k, kt.gemm_q4k};
    case DType::Q5_K: return {kt.gemv_q5k, kt.gemm_q5k};
    case DType::Q6_K: return {kt.gemv_q6k, kt.gemm_q6k};
    default: return {kt.gemv_q8, kt.gemm_q8};  // Q8_0 and Q4_0
  }
}

// An output range of one job: the unit the threads share.
struct Tile {
  int32_t job;
  int64_t o_begin, o_end;
};

void run_matmul_jobs(std::span<const MatmulJob> jobs, ThreadPool& pool, const MatmulOptions& options) {
  const KernelTable& kt = kernels::cpu::checked_kernel_table(options.isa);
  std::vector<PreparedJob> prepared;
  std::vector<Tile> tiles;
  for (const MatmulJob& job : jobs) {
    const WeightMatrix W = weight_matrix(job.W);
    JM_CHECK(job.rows >= 0 && job.x_stride >= W.cols && job.y_stride >= W.rows, "matmul: ", job.rows,
             " rows with x stride ", job.x_stride, " and y stride ", job.y_stride, " do not fit weight ",
             shape_str(job.W.shape));
    JM_CHECK(W.cols % dtype_block_elems(W.dtype) == 0, "matmul weight ", shape_str(job.W.shape), " in ",
             dtype_name(W.dtype), ": rows must be whole blocks of ", dtype_block_elems(W.dtype), " values");
    if (job.rows == 0 || W.rows == 0) continue;
    PreparedJob p{&job, W, job.rows <= kernels::cpu::kGemvMaxRows, job.x, job.x_stride, false, {}, {}, {}, {}, {}};
    if (!p.gemv && options.activations == Activations::BF16 && W.dtype == DType::BF16) {
      if (kt.gemm_bf16dot != nullptr && W.cols % 2 == 0) {
        p.bf16_dot = true;  // rounded and packed below, with every such job's rows in one pass
      } else {              // the same rounding, fp32 multiply-adds
        std::vector<uint16_t> rounded(size_t(job.rows * W.cols));
        for (int64_t t = 0; t < job.rows; ++t)
          kt.round_to_bf16(job.x + t * job.x_stride, rounded.data() + t * W.cols, W.cols);
        p.x_rounded.resize(rounded.size());
        to_f32(DType::BF16, rounded.data(), p.x_rounded.data(), rounded.size());
        p.x = p.x_rounded.data();
        p.ldx = W.cols;
      }
    }
    prepared.push_back(std::move(p));
  }
  const int64_t gemv_tile_bytes = gemv_tile_bytes_for(prepared, pool.num_threads());
  for (size_t j = 0; j < prepared.size(); ++j) {
    const WeightMatrix& W = prepared[j].W;
    const int64_t row_bytes = std::max<int64_t>(1, int64_t(dtype_bytes(W.dtype, W.cols)));
    const int64_t step =
        prepared[j].gemv ? std::max<int64_t>(4, gemv_tile_bytes / row_bytes / 4 * 4) : kGemmTileCols;
    for (int64_t o = 0; o < W.rows; o += step) tiles.push_back({int32_t(j), o, std::min(W.rows, o + step)});
  }
  quantize_activations(prepared, kt, pool);
  pack_bf16_activations(prepared, kt, pool);
  const int64_t scratch = std::any_of(prepared.begin(), prepared.end(), [](const PreparedJob& p) { return !p.gemv; })
                              ? kt.gemm_scratch_floats
                              : 0;
  kernels::cpu::for_each_item(pool, int64_t(tiles.size()), scratch, [&](int64_t i, float* panel) {
    const Tile& tile = tiles[size_t(i)];
    const PreparedJob& p = prepared[size_t(tile.job)];
    const MatmulJob& job = *p.job;
    if (p.quantized()) {
      const QuantizedProducts products = quantized_products(kt, p.W.dtype);
      if (p.gemv) products.gemv(p.quantized_rows(), p.W, tile.o_begin, tile.o_end, job.y, job.y_stride);
      else products.gemm(p.quantized_rows(), p.W, tile.o_begin, tile.o_end, job.y, job.y_stride, panel);
    } else if (p.gemv) kt.gemv(p.x, p.ldx, job.rows, p.W, tile.o_begin, tile.o_end, job.y, job.y_stride);
    else if (p.bf16_dot) kt.gemm_bf16dot(p.x_panels.data(), job.rows, p.W, tile.o_begin, tile.o_end, job.y, job.y_stride);
    else kt.gemm(p.x, p.ldx, job.rows, p.W, tile.o_begin, tile.o_end, job.y, job.y_stride, panel);
  });
}

std::vector<float> to_f32_vector(const TensorView& v, int64_t n, const char* what) {
  JM_CHECK(v.numel() == n, what, " has ", v.numel(), " values, expected ", n);
  std::vector<float> out(static_cast<size_t>(n));
  to_f32(v.dtype, v.data, out.data(), size_t(n));
  return out;
}

}  // namespace

void matmul_xwT(const float* x, int64_t x_stride, int64_t T, const TensorView& W, float* y, int64_t y_stride,
                ThreadPool& pool, const MatmulOptions& options) {
  const MatmulJob job{x, x_stride, T, W, y, y_stride};
  run_matmul_jobs(std::span<const MatmulJob>(&job, 1), pool, options);
}

void matmul_xwT_grouped(std::span<const MatmulJob> jobs, ThreadPool& pool, const MatmulOptions& options) {
  run_matmul_jobs(jobs, pool, options);
}

void rmsnorm(const float* x, const TensorView& weight, double eps, int64_t T, int64_t d, float* y, Isa isa) {
  const KernelTable& kt = kernels::cpu::checked_kernel_table(isa);
  const std::vector<float> w = to_f32_vector(weight, d, "rmsnorm weight");
  for (int64_t t = 0; t < T; ++t) kt.rmsnorm(x + t * d, w.data(), float(eps), d, y + t * d);
}

void rope(const kernels::Rope& rope, float* x, int64_t n_heads, int64_t head_stride, int64_t pos, Isa isa) {
  const int64_t half = rope.half();
  std::vector<float> cos(static_cast<size_t>(half)), sin(static_cast<size_t>(half));
  rope.cos_sin(pos, cos.data(), sin.data());
  kernels::cpu::checked_kernel_table(isa).rope(x, n_heads, head_stride, half, cos.data(), sin.data());
}

void silu_glu(const float* u, int64_t n, int64_t F, float* z, ThreadPool& pool, Isa isa) {
  const KernelTable& kt = kernels::cpu::checked_kernel_table(isa);
  const auto rows = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) kt.silu_glu(u + r * 2 * F, u + r * 2 * F + F, F, z + r * F);
  };
  if (n * F < kParallelElements) rows(0, n);
  else pool.parallel_for(n, rows);
}

void silu_glu_backward(const float* u, const float* dz, int64_t n, int64_t F, float* du, ThreadPool& pool, Isa isa) {
  const KernelTable& kt = kernels::cpu::checked_kernel_table(isa);
  const auto rows = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      kt.silu_glu_backward(u + r * 2 * F, u + r * 2 * F + F, dz + r * F, F, du + r * 2 * F, du + r * 2 * F + F);
  };
  if (n * F < kParallelElements) rows(0, n);
  else pool.parallel_for(n, rows);
}

void softmax(float* x, int64_t n, Isa isa) { kernels::cpu::checked_kernel_table(isa).softmax(x, n); }

void add_bias(float* y, int64_t T, int64_t d, const TensorView& bias, Isa isa) {
  const KernelTable& kt = kernels::cpu::checked_kernel_table(isa);
  const std::vector<float> b = to_f32_vector(bias, d, "bias");
  for (int64_t t = 0; t < T; ++t) kt.add(y + t * d, b.data(), d);
}

void load_row(const TensorView& W, int64_t row, float* out) { kernels::load_row(W, row, out); }

namespace {

// Decoding (a few query rows) reads the whole cache once per layer: the positions are cut into
// contiguous ranges, each walked by kt.decode_attention with every head at once (one sequential
// stream of K and V rows), and the ranges' softmaxes merged at the end. Several ranges per thread
// keep a thread that starts late from leaving all the work to the others; a range is at least
// kDecodeMinPositions long, so short caches take one.
constexpr int64_t kDecodeRangesPerThread = 4;
constexpr int64_t kDecodeMinPositions = 256;

void decode_attention_in_ranges(const KernelTable& kt, const float* q, int64_t rows, int64_t H, int64_t D,
                                const KvRows& kv, const std::vector<int64_t>& n_keys, float scale, float* out,
                                ThreadPool& pool) {
  const int64_t HD = H * D, Hp = kernels::cpu::decode_heads_padded(H);
  const int64_t n_min = *std::min_element(n_keys.begin(), n_keys.end());
  const int64_t n_max = *std::max_element(n_keys.begin(), n_keys.end());
  // Ranges cut [0, n_min), the last one running on to n_max: every row sees a key in each.
  const int64_t ranges = std::clamp<int64_t>(n_min / kDecodeMinPositions, 1, kDecodeRangesPerThread * pool.num_threads());
  const int64_t state_floats = kernels::cpu::decode_state_floats(rows, H, D);
  std::vector<float> states(size_t(ranges * state_floats));
  const auto state_of = [&](int64_t range) {
    return kernels::cpu::decode_state(states.data() + range * state_floats, rows, H);
  };
  kernels::cpu::for_each_item(pool, ranges, kernels::cpu::decode_scratch_floats(rows, H), [&](int64_t range, float* scratch) {
    float* state = states.data() + range * state_floats;
    const kernels::cpu::DecodeState parts = state_of(range);
    std::fill(parts.m, parts.l, -std::numeric_limits<float>::infinity());
    std::fill(parts.l, state + state_floats, 0.0f);  // l, then o
    kernels::cpu::DecodeAttentionBlock b;
    b.q = q, b.keys = kv.keys, b.values = kv.values, b.kv_type = kv.type;
    b.rows = rows, b.heads = H, b.head_dim = D;
    b.key_begin = range * n_min / ranges;
    b.key_end = range + 1 == ranges ? n_max : (range + 1) * n_min / ranges;
    b.n_keys = n_keys.data();
    b.scale = scale;
    b.state = state;
    kt.decode_attention(b, scratch);
  });
  // out = sum of o x exp(m - top) / sum of l x exp(m - top) over the ranges, per row and head.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < H; ++j) {
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t range = 0; range < ranges; ++range) top = std::max(top, state_of(range).m[r * Hp + j]);
      float* o = out + r * HD + j * D;
      std::fill(o, o + D, 0.0f);
      float total = 0.0f;
      for (int64_t range = 0; range < ranges; ++range) {
        const kernels::cpu::DecodeState part = state_of(range);
        const float w = std::exp(part.m[r * Hp + j] - top);
        total += w * part.l[r * Hp + j];
        const float* src = part.o + r * HD + j * D;
        for (int64_t i = 0; i < D; ++i) o[i] += w * src[i];
      }
      for (int64_t i = 0; i < D; ++i) o[i] /= total;
    }
}

}  // namespace

void store_kv_row(const float* src, void* dst, DType type, int64_t n, Isa isa) {
  if (type == DType::F32) {
    std::copy(src, src + n, static_cast<float*>(dst));
    return;
  }
  JM_CHECK(type == DType::F16, "KV cache rows are F32 or F16, got ", dtype_name(type));
  kernels::cpu::checked_kernel_table(isa).round_to_f16(src, static_cast<uint16_t*>(dst), n);
}

void causal_attention(const float* q, int64_t T, int64_t k, int64_t H, int64_t D, const KvRows& kv, int64_t start,
                      float* out, ThreadPool& pool, const MatmulOptions& options) {
  using kernels::cpu::kAttentionMaxRows;
  JM_CHECK(kv.type == DType::F32 || kv.type == DType::F16, "KV cache rows are F32 or F16, got ",
           dtype_name(kv.type));
  const KernelTable& kt = kernels::cpu::checked_kernel_table(options.isa);
  const int64_t HD = H * D, rows = T * k;
  if (rows == 0 || H == 0) return;
  // Causal limit of every query row (row a is slot a % k of token a / k).
  std::vector<int64_t> n_keys(static_cast<size_t>(rows));
  for (int64_t a = 0; a < rows; ++a) n_keys[size_t(a)] = start + a / k + 1;
  const float scale = 1.0f / std::sqrt(float(D));
  if (rows <= kDecodeMaxRows) {
    decode_attention_in_ranges(kt, q, rows, H, D, kv, n_keys, scale, out, pool);
    return;
  }
  // Items: (KV head, block of query rows), the blocks with the most keys first so the queue
  // ends with cheap items.
  const int64_t blocks = (rows + kAttentionMaxRows - 1) / kAttentionMaxRows;
  const int64_t scratch_floats = kernels::cpu::attention_scratch_floats(D);
  kernels::cpu::for_each_item(pool, blocks * H, scratch_floats, [&](int64_t item, float* scratch) {
    const int64_t block = blocks - 1 - item / H, j = item % H;
    const int64_t a0 = block * kAttentionMaxRows;
    kernels::cpu::AttentionBlock b;
    b.q = q + a0 * HD + j * D;
    b.q_stride = HD;
    const size_t head_offset = size_t(j * D) * dtype_size(kv.type);
    b.keys = static_cast<const std::byte*>(kv.keys) + head_offset;
    b.values = static_cast<const std::byte*>(kv.values) + head_offset;
    b.kv_type = kv.type;
    b.kv_stride = HD;
    b.out = out + a0 * HD + j * D;
    b.out_stride = HD;
    b.rows = std::min(kAttentionMaxRows, rows - a0);
    b.n_keys = n_keys.data() + a0;
    b.head_dim = D;
    b.scale = scale;
    b.bf16_products = options.activations == Activations::BF16;
    kt.attention(b, scratch);
  });
}

}  // namespace jetmoe::ops
