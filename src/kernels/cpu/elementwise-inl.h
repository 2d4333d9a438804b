// Row kernels (RMSNorm, SiLU-GLU, softmax, bias add, RoPE) and the machine probes, for one ISA.
// Each follows the operation order of its oracle in kernels/ref so results differ only by
// summation order and the exp polynomial. Included by isa_<level>.cc inside its namespace and
// target pragma (after the Simd definition); no includes here.

inline float sum_of_squares(const float* x, int64_t n) {
  V a0 = Simd::zero(), a1 = Simd::zero();
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const V u = Simd::load(x + i), w = Simd::load(x + i + N);
    a0 = Simd::fma(u, u, a0);
    a1 = Simd::fma(w, w, a1);
  }
  for (; i < n; i += N) {
    const V u = Simd::load_n(x + i, int(std::min<int64_t>(N, n - i)));
    a0 = Simd::fma(u, u, a0);
  }
  return Simd::reduce_add(Simd::add(a0, a1));
}

void rmsnorm(const float* x, const float* weight, float eps, int64_t d, float* y) {
  const float scale = 1.0f / std::sqrt(sum_of_squares(x, d) / float(d) + eps);
  const V vs = Simd::set1(scale);
  int64_t i = 0;
  for (; i + N <= d; i += N) Simd::store(y + i, Simd::mul(Simd::load(weight + i), Simd::mul(Simd::load(x + i), vs)));
  for (; i < d; ++i) y[i] = weight[i] * (x[i] * scale);
}

// z = gate / (1 + e^-gate) * up
void silu_glu(const float* gate, const float* up, int64_t F, float* z) {
  const V one = Simd::set1(1.0f), zero = Simd::zero();
  int64_t i = 0;
  for (; i + N <= F; i += N) {
    const V g = Simd::load(gate + i);
    const V silu = Simd::div(g, Simd::add(one, Simd::exp(Simd::sub(zero, g))));
    Simd::store(z + i, Simd::mul(silu, Simd::load(up + i)));
  }
  if (i < F) {
    const int n = int(F - i);
    const V g = Simd::load_n(gate + i, n);
    const V silu = Simd::div(g, Simd::add(one, Simd::exp(Simd::sub(zero, g))));
    Simd::store_n(z + i, Simd::mul(silu, Simd::load_n(up + i, n)), n);
  }
}

// The gradient of z = silu(gate) * up, with s = 1 / (1 + e^-gate):
//   dup = dz * gate * s,  dgate = dz * up * s * (1 + gate * (1 - s)),
// in the order of the oracle (kernels::silu_glu_backward).
void silu_glu_backward(const float* gate, const float* up, const float* dz, int64_t F, float* dgate, float* dup) {
  const V one = Simd::set1(1.0f), zero = Simd::zero();
  for (int64_t i = 0; i < F; i += N) {
    const int n = int(std::min<int64_t>(N, F - i));
    const auto load = [&](const float* p) { return n == N ? Simd::load(p + i) : Simd::load_n(p + i, n); };
    const V g = load(gate), grad = load(dz);
    const V sig = Simd::div(one, Simd::add(one, Simd::exp(Simd::sub(zero, g))));
    const V du = Simd::mul(Simd::mul(grad, g), sig);
    const V dsilu = Simd::add(one, Simd::mul(g, Simd::sub(one, sig)));  // silu'(g) / s
    const V dg = Simd::mul(Simd::mul(Simd::mul(grad, load(up)), sig), dsilu);
    if (n == N) {
      Simd::store(dup + i, du);
      Simd::store(dgate + i, dg);
    } else {
      Simd::store_n(dup + i, du, n);
      Simd::store_n(dgate + i, dg, n);
    }
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  V vmax = Simd::set1(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + N <= n; i += N) vmax = Simd::max(vmax, Simd::load(x + i));
  float mx = Simd::reduce_max(vmax);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  const V vm = Simd::set1(mx);
  V vsum = Simd::zero();
  for (i = 0; i + N <= n; i += N) {
    const V e = Simd::exp(Simd::sub(Simd::load(x + i), vm));
    Simd::store(x + i, e);
    vsum = Simd::add(vsum, e);
  }
  if (i < n) {
    const int r = int(n - i);
    const V e = Simd::exp(Simd::sub(Simd::load_n(x + i, r), vm));
    Simd::store_n(x + i, e, r);
    vsum = Simd::add(vsum, Simd::load_n(x + i, r));
  }
  const V inv = Simd::set1(1.0f / Simd::reduce_add(vsum));
  for (i = 0; i + N <= n; i += N) Simd::store(x + i, Simd::mul(Simd::load(x + i), inv));
  if (i < n) Simd::store_n(x + i, Simd::mul(Simd::load_n(x + i, int(n - i)), inv), int(n - i));
}

void add(float* y, const float* b, int64_t n) {
  int64_t i = 0;
  for (; i + N <= n; i += N) Simd::store(y + i, Simd::add(Simd::load(y + i), Simd::load(b + i)));
  for (; i < n; ++i) y[i] += b[i];
}

// a' = a c - b s, b' = b c + a s in the oracle's order (the compiler may still contract a
// product and the sum into one FMA, which only rounds less).
void rope(float* x, int64_t n_heads, int64_t head_stride, int64_t half, const float* cos, const float* sin) {
  for (int64_t h = 0; h < n_heads; ++h) {
    float* lo = x + h * head_stride;
    float* hi = lo + half;
    int64_t i = 0;
    for (; i + N <= half; i += N) {
      const V a = Simd::load(lo + i), b = Simd::load(hi + i), c = Simd::load(cos + i), s = Simd::load(sin + i);
      Simd::store(lo + i, Simd::sub(Simd::mul(a, c), Simd::mul(b, s)));
      Simd::store(hi + i, Simd::add(Simd::mul(b, c), Simd::mul(a, s)));
    }
    for (; i < half; ++i) {
      const float a = lo[i], b = hi[i];
      lo[i] = a * cos[i] - b * sin[i];
      hi[i] = b * cos[i] + a * sin[i];
    }
  }
}

void round_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void round_to_f16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + N <= n; i += N) Simd::store_f16(dst + i, Simd::load(src + i));
  if (i < n) Simd::store_f16_n(dst + i, Simd::load_n(src + i, int(n - i)), int(n - i));
}

// ---- probes ----

// kMr x kNv independent multiply-add chains (as many as the GEMM tile keeps in flight).
double fma_flops(int64_t iters) {
  constexpr int kChains = Simd::kMr * Simd::kNv;
  V acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = Simd::set1(float(j));
  const V a = Simd::set1(0.999999f), c = Simd::set1(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 32  // all chains in registers: the compiler must not interchange the loops
    for (int j = 0; j < kChains; ++j) acc[j] = Simd::fma(acc[j], a, c);
  V sum = Simd::zero();
  for (int j = 0; j < kChains; ++j) sum = Simd::add(sum, acc[j]);
  volatile float sink = Simd::reduce_add(sum);  // keeps the loop alive
  (void)sink;
  return 2.0 * N * kChains * double(iters);
}

float read_sum(const float* p, int64_t n) {
  V a0 = Simd::zero(), a1 = Simd::zero(), a2 = Simd::zero(), a3 = Simd::zero();
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = Simd::add(a0, Simd::load(p + i));
    a1 = Simd::add(a1, Simd::load(p + i + N));
    a2 = Simd::add(a2, Simd::load(p + i + 2 * N));
    a3 = Simd::add(a3, Simd::load(p + i + 3 * N));
  }
  float total = Simd::reduce_add(Simd::add(Simd::add(a0, a1), Simd::add(a2, a3)));
  for (; i < n; ++i) total += p[i];
  return total;
}
