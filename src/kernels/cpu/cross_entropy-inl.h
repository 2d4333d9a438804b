// Cross-entropy of one row of logits and its gradient on AVX-512 (kernels/cross_entropy.h): the
// loss in double, the gradient rounded to fp32. Included by isa_avx512*.cc inside their namespace
// and target pragma; no includes here.

// e^x in double for x <= 0 (the logits minus their max). x = n ln2 + r with n = round(x / ln2)
// and r reduced against ln2 split in two (the high part has trailing zeros, so n * hi is exact
// for |n| < 2^11), |r| <= ln2/2; e^r by its Taylor series to r^13 (the next term is < 1e-17 of
// the sum); scalef multiplies by 2^n exactly, down into subnormals and to zero.
__m512d exp_pd(__m512d x) {
  const __m512d lowest = _mm512_set1_pd(-746.0);  // e^-746 is below the least subnormal
  x = _mm512_max_pd(lowest, x);                     // a NaN x is returned as it is
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634074)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
  static constexpr double kInverseFactorials[] = {
      1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
      1.0 / 40320.0,      1.0 / 5040.0,      1.0 / 720.0,      1.0 / 120.0,     1.0 / 24.0,
      1.0 / 6.0,          1.0 / 2.0,         1.0,              1.0};
  __m512d p = _mm512_set1_pd(kInverseFactorials[0]);
  for (int i = 1; i < 14; ++i) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kInverseFactorials[i]));
  return _mm512_scalef_pd(p, n);
}

double cross_entropy_row(const float* logits, int64_t V, int64_t target, double scale, float* dlogits) {
  // Pass 1: the max; pass 2: e^(x - max) into dlogits (as fp32 scaled later) and its sum in
  // double — the loss needs only the sum, the gradient the values.
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  int64_t v = 0;
  for (; v + 16 <= V; v += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(logits + v));
  float mx = _mm512_reduce_max_ps(vmax);
  for (; v < V; ++v) mx = std::max(mx, logits[v]);
  const __m512d vmx = _mm512_set1_pd(double(mx));
  __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
  thread_local std::vector<double> shifted_exp;  // e^(x - max) of the row, kept for the gradient
  if (int64_t(shifted_exp.size()) < V) shifted_exp.resize(size_t(V));
  double* e = shifted_exp.data();
  for (v = 0; v + 16 <= V; v += 16) {
    const __m512 x = _mm512_loadu_ps(logits + v);
    const __m512d lo = exp_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(x)), vmx));
    const __m512d hi = exp_pd(
        _mm512_sub_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))), vmx));
    _mm512_storeu_pd(e + v, lo);
    _mm512_storeu_pd(e + v + 8, hi);
    sum_lo = _mm512_add_pd(sum_lo, lo);
    sum_hi = _mm512_add_pd(sum_hi, hi);
  }
  double sum = _mm512_reduce_add_pd(_mm512_add_pd(sum_lo, sum_hi));
  for (; v < V; ++v) sum += (e[v] = std::exp(double(logits[v]) - double(mx)));
  const __m512d factor = _mm512_set1_pd(scale / sum);
  for (v = 0; v + 8 <= V; v += 8)
    _mm256_storeu_ps(dlogits + v, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_loadu_pd(e + v), factor)));
  for (; v < V; ++v) dlogits[v] = float(e[v] * (scale / sum));
  dlogits[target] -= float(scale);
  return double(mx) + std::log(sum) - double(logits[target]);
}
