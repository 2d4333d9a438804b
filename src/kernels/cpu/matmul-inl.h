// Products y = x · W^T for one ISA, written once over the `Simd` of the including file:
//  - gemv: few activation rows (decoding). Streams W rows once, converting BF16/F16 on the fly,
//    as dot products along the input dimension (memory bound: W is read exactly once).
//  - gemm: many rows (prefill). Packs a panel of kNr output columns x kKc inputs of W into fp32,
//    k-major (transposed in registers), then a register tile of kMr rows x kNr columns
//    accumulates outer products: one B load per kNv vectors, one broadcast per row.
// Included by isa_<level>.cc inside its namespace and target pragma; no includes here.

using V = Simd::V;
constexpr int N = Simd::N;
constexpr int kMr = Simd::kMr;
constexpr int kNr = Simd::kNv * Simd::N;
// Inputs per packed panel: kKc x kNr floats (32 KB with AVX-512) stay in L1 while every row tile
// of x passes over them.
constexpr int64_t kKc = 256;

// N values of type kType from element `at` of `data`, as fp32.
template <DType kType>
inline V load_as_f32(const void* data, int64_t at) {
  if constexpr (kType == DType::F32) return Simd::load(static_cast<const float*>(data) + at);
  if constexpr (kType == DType::BF16) return Simd::load_bf16(static_cast<const uint16_t*>(data) + at);
  if constexpr (kType == DType::F16) return Simd::load_f16(static_cast<const uint16_t*>(data) + at);
}

// The first n (< N) of them; the other lanes are zero and nothing past n is read.
template <DType kType>
inline V load_as_f32_n(const void* data, int64_t at, int n) {
  if constexpr (kType == DType::F32) return Simd::load_n(static_cast<const float*>(data) + at, n);
  if constexpr (kType == DType::BF16) return Simd::load_bf16_n(static_cast<const uint16_t*>(data) + at, n);
  if constexpr (kType == DType::F16) return Simd::load_f16_n(static_cast<const uint16_t*>(data) + at, n);
}

template <DType kType>
inline V load_weights(const WeightMatrix& W, int64_t row, int64_t col) {
  return load_as_f32<kType>(W.data, row * W.cols + col);
}

template <DType kType>
inline V load_weights_n(const WeightMatrix& W, int64_t row, int64_t col, int n) {
  return load_as_f32_n<kType>(W.data, row * W.cols + col, n);
}

// ---- gemv ----

// Software prefetch of W rows this far ahead of the loads: as for the 8-bit weights
// (matmul_q8vnni-inl.h), the hardware prefetcher alone leaves read bandwidth unused (JetMoE-8B
// BF16 decoding, Zen 5: +12% with 1 and with 2 threads, to 96-100% of the read probe).
constexpr int64_t kGemvPrefetchAhead = 8192;

template <DType kType>
inline void prefetch_weights(const WeightMatrix& W, int64_t row, int64_t col, int64_t count) {
  constexpr int64_t kElem = kType == DType::F32 ? 4 : 2;
  const char* at = static_cast<const char*>(W.data) + (row * W.cols + col) * kElem + kGemvPrefetchAhead;
  for (int64_t line = 0; line < count * kElem; line += 64) __builtin_prefetch(at + line, 0, 3);
}

// kRows outputs (W rows o ..) for kT activation rows, kU vectors of each W row per step into
// independent accumulators.
template <DType kType, int kT, int kRows, int kU>
inline void gemv_tile(const float* x, int64_t ldx, const WeightMatrix& W, int64_t o, float* y, int64_t ldy) {
  const int64_t K = W.cols;
  V acc[kRows][kT][kU];
  for (int i = 0; i < kRows; ++i)
    for (int t = 0; t < kT; ++t)
      for (int u = 0; u < kU; ++u) acc[i][t][u] = Simd::zero();
  int64_t k = 0;
  for (; k + kU * N <= K; k += kU * N) {
    for (int i = 0; i < kRows; ++i) {
      prefetch_weights<kType>(W, o + i, k, kU * N);
      V w[kU];
      for (int u = 0; u < kU; ++u) w[u] = load_weights<kType>(W, o + i, k + u * N);
      for (int t = 0; t < kT; ++t)
        for (int u = 0; u < kU; ++u) acc[i][t][u] = Simd::fma(w[u], Simd::load(x + t * ldx + k + u * N), acc[i][t][u]);
    }
  }
  for (; k < K; k += N) {  // whole vectors, then one partial
    const int n = int(std::min<int64_t>(N, K - k));
    for (int i = 0; i < kRows; ++i) {
      const V w = n == N ? load_weights<kType>(W, o + i, k) : load_weights_n<kType>(W, o + i, k, n);
      for (int t = 0; t < kT; ++t) {
        const V xv = n == N ? Simd::load(x + t * ldx + k) : Simd::load_n(x + t * ldx + k, n);
        acc[i][t][0] = Simd::fma(w, xv, acc[i][t][0]);
      }
    }
  }
  for (int i = 0; i < kRows; ++i)
    for (int t = 0; t < kT; ++t) {
      V sum = acc[i][t][0];
      for (int u = 1; u < kU; ++u) sum = Simd::add(sum, acc[i][t][u]);
      y[t * ldy + o + i] = Simd::reduce_add(sum);
    }
}

// One W row at a time, 4 vectors per step, while the activation rows fit in a third of L1 beside
// it: a single sequential stream per thread is what the hardware prefetcher follows best (BF16,
// one thread, [11264, 2048] from DRAM: 1 row 37-40 GB/s, 2 rows 35 GB/s, against 21-23 for tiles
// of 4 W rows, of a 35-40 GB/s read bandwidth). Rows that do not fit (2 rows of 5632, 4 of 2048:
// 10-14 GB/s this way) take tiles of 4 W rows, so each activation vector loaded serves 4 rows.
constexpr int64_t kGemvActivationBytes = 16 * 1024;

template <DType kType, int kT>
void gemv_rows(const float* x, int64_t ldx, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
               int64_t ldy) {
  int64_t o = o_begin;
  if (kT == 1 || kT * W.cols * int64_t(sizeof(float)) <= kGemvActivationBytes) {
    for (; o < o_end; ++o) gemv_tile<kType, kT, 1, 4>(x, ldx, W, o, y, ldy);
  } else {
    for (; o + 4 <= o_end; o += 4) gemv_tile<kType, kT, 4, 1>(x, ldx, W, o, y, ldy);
    for (; o < o_end; ++o) gemv_tile<kType, kT, 1, 1>(x, ldx, W, o, y, ldy);
  }
}

template <DType kType>
void gemv_typed(const float* x, int64_t ldx, int64_t T, const WeightMatrix& W, int64_t o_begin, int64_t o_end,
                float* y, int64_t ldy) {
  static_assert(kGemvMaxRows == 4, "one case per row count below");
  switch (T) {
    case 1: return gemv_rows<kType, 1>(x, ldx, W, o_begin, o_end, y, ldy);
    case 2: return gemv_rows<kType, 2>(x, ldx, W, o_begin, o_end, y, ldy);
    case 3: return gemv_rows<kType, 3>(x, ldx, W, o_begin, o_end, y, ldy);
    case 4: return gemv_rows<kType, 4>(x, ldx, W, o_begin, o_end, y, ldy);
    default: return;
  }
}

void gemv(const float* x, int64_t ldx, int64_t T, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
          int64_t ldy) {
  switch (W.dtype) {
    case DType::F32: return gemv_typed<DType::F32>(x, ldx, T, W, o_begin, o_end, y, ldy);
    case DType::BF16: return gemv_typed<DType::BF16>(x, ldx, T, W, o_begin, o_end, y, ldy);
    case DType::F16: return gemv_typed<DType::F16>(x, ldx, T, W, o_begin, o_end, y, ldy);
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return;  // ops.cc runs quantized weights on the 8-bit kernels (matmul_q8*, matmul_kquant*)
  }
}

// ---- register-tiled product, shared by gemm, attention and the backward products ----

// A register tile's C: MR rows of kNv vectors, of which vector v holds lanes[v] (0 .. N) columns.
// Read into the accumulators (zero unless accumulate), and written back, touching only those.
template <int MR>
inline void load_c_tile(V (&acc)[MR][Simd::kNv], const float* C, int64_t ldc, const int (&lanes)[Simd::kNv],
                        bool accumulate) {
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < Simd::kNv; ++v)
      acc[r][v] = !accumulate ? Simd::zero()
                  : lanes[v] == N ? Simd::load(C + r * ldc + v * N)
                                  : Simd::load_n(C + r * ldc + v * N, lanes[v]);
}
template <int MR>
inline void store_c_tile(const V (&acc)[MR][Simd::kNv], float* C, int64_t ldc, const int (&lanes)[Simd::kNv]) {
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < Simd::kNv; ++v) {
      if (lanes[v] == N) Simd::store(C + r * ldc + v * N, acc[r][v]);
      else if (lanes[v] > 0) Simd::store_n(C + r * ldc + v * N, acc[r][v], lanes[v]);
    }
}

// Prefetches rows [r_begin, r_end) of C (cols floats each, ldc apart) for writing: a weight
// gradient block's next row tile, read-modify-written while this one computes.
inline void prefetch_c_rows(const float* C, int64_t ldc, int64_t r_begin, int64_t r_end, int64_t cols) {
  for (int64_t r = r_begin; r < r_end; ++r)
    for (int64_t byte = 0; byte < cols * int64_t(sizeof(float)); byte += 64)
      __builtin_prefetch(reinterpret_cast<const char*>(C + r * ldc) + byte, 1, 3);
}

// C[0:MR, 0:n] (+)= A[0:MR, 0:K] · B[0:K, 0:n] with n <= kNr. A element (r, k) is A[r * lda + k],
// or A[k * lda + r] when kTransposedA (dy^T of a weight gradient: a row of dy holds one k);
// broadcast one element at a time. B rows ldb apart; B loads read kNr columns unless kMaskB (then
// exactly n); only the first n columns of C are read or written.
template <int MR, bool kMaskB, bool kTransposedA = false>
void micro_tile(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int n,
                bool accumulate) {
  constexpr int NV = Simd::kNv;
  int lanes[NV];
  for (int v = 0; v < NV; ++v) lanes[v] = std::clamp(n - v * N, 0, N);
  V acc[MR][NV];
  load_c_tile<MR>(acc, C, ldc, lanes, accumulate);
  for (int64_t k = 0; k < K; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v)
      b[v] = kMaskB ? Simd::load_n(B + k * ldb + v * N, lanes[v]) : Simd::load(B + k * ldb + v * N);
    for (int r = 0; r < MR; ++r) {
      const V a = Simd::set1(kTransposedA ? A[k * lda + r] : A[r * lda + k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = Simd::fma(a, b[v], acc[r][v]);
    }
  }
  store_c_tile<MR>(acc, C, ldc, lanes);
}

using MicroTileFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int, bool);

template <bool kMaskB, bool kTransposedA, int... R>
constexpr std::array<MicroTileFn, sizeof...(R)> micro_tiles(std::integer_sequence<int, R...>) {
  return {&micro_tile<R + 1, kMaskB, kTransposedA>...};
}

// The tile for `rows` (1 .. kMr) rows.
template <bool kMaskB, bool kTransposedA = false>
MicroTileFn micro_tile_for(int64_t rows) {
  static constexpr auto tiles = micro_tiles<kMaskB, kTransposedA>(std::make_integer_sequence<int, kMr>());
  return tiles[size_t(rows - 1)];
}

// C[0:rows, 0:n] (+)= A · B for any rows, kMr at a time.
template <bool kMaskB>
void tile_rows(int64_t rows, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
               int64_t ldc, int n, bool accumulate) {
  for (int64_t r0 = 0; r0 < rows; r0 += kMr) {
    const int64_t mr = std::min<int64_t>(kMr, rows - r0);
    micro_tile_for<kMaskB>(mr)(K, A + r0 * lda, lda, B, ldb, C + r0 * ldc, ldc, n, accumulate);
  }
}

// ---- gemm ----

// panel[kk * kNr + j] = W[o0 + j, k0 + kk] as fp32 for j < rows, kk < kc; zero for rows <= j < kNr.
template <DType kType>
void pack_panel(const WeightMatrix& W, int64_t o0, int64_t rows, int64_t k0, int64_t kc, float* panel) {
  for (int j0 = 0; j0 < kNr; j0 += N) {
    for (int64_t kk = 0; kk < kc; kk += N) {
      const int n = int(std::min<int64_t>(N, kc - kk));
      V r[N];
      for (int i = 0; i < N; ++i) {
        const int64_t row = j0 + i;
        if (row >= rows) r[i] = Simd::zero();
        else if (n == N) r[i] = load_weights<kType>(W, o0 + row, k0 + kk);
        else r[i] = load_weights_n<kType>(W, o0 + row, k0 + kk, n);
      }
      Simd::transpose(r);
      for (int i = 0; i < n; ++i) Simd::store(panel + (kk + i) * kNr + j0, r[i]);
    }
  }
}

template <DType kType>
void gemm_typed(const float* x, int64_t ldx, int64_t T, const WeightMatrix& W, int64_t o_begin, int64_t o_end,
                float* y, int64_t ldy, float* panel) {
  const int64_t K = W.cols;
  if (K == 0) {
    for (int64_t t = 0; t < T; ++t) std::fill(y + t * ldy + o_begin, y + t * ldy + o_end, 0.0f);
    return;
  }
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kNr) {
    const int n = int(std::min<int64_t>(kNr, o_end - o0));
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0);
      pack_panel<kType>(W, o0, n, k0, kc, panel);
      tile_rows<false>(T, kc, x + k0, ldx, panel, kNr, y + o0, ldy, n, /*accumulate=*/k0 > 0);
    }
  }
}

void gemm(const float* x, int64_t ldx, int64_t T, const WeightMatrix& W, int64_t o_begin, int64_t o_end, float* y,
          int64_t ldy, float* panel) {
  switch (W.dtype) {
    case DType::F32: return gemm_typed<DType::F32>(x, ldx, T, W, o_begin, o_end, y, ldy, panel);
    case DType::BF16: return gemm_typed<DType::BF16>(x, ldx, T, W, o_begin, o_end, y, ldy, panel);
    case DType::F16: return gemm_typed<DType::F16>(x, ldx, T, W, o_begin, o_end, y, ldy, panel);
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return;  // ops.cc runs quantized weights on the 8-bit kernels (matmul_q8*, matmul_kquant*)
  }
}

constexpr int64_t kGemmScratchFloats = kKc * kNr;
