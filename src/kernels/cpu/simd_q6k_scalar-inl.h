// The Q6_K super-block policy of matmul_kquant-inl.h in portable C++: the oracle's arithmetic
// (kernels/ref/quantized_ops.h) in the oracle's order, so this level equals it bit for bit.
// Included by isa_scalar.cc inside its namespace; no includes here.

struct Q6kScalar {
  struct Layout {
    static constexpr size_t kBytes = kQ6kBytes;
  };
  struct Sums {
    float acc;  // sum over activation blocks k of (d dx_k) (sum of sc_g w_j q_j over its 32 values)
  };
  struct Scales {
    float d;
  };

  static Sums zero() { return {0.0f}; }
  static float finish(const Sums& s) { return s.acc; }

  static Scales load_scales(const uint8_t* block) {
    uint16_t d;
    std::memcpy(&d, block + kQ6kDAt, 2);
    return {f16_to_f32(d)};
  }

  static void accumulate(const uint8_t* block, const Scales& s, const int8_t* xq, const float* xs, const int32_t*,
                         Sums& sums) {
    for (int k = 0; k < kKQuantSuperBlock / kQuantBlock; ++k) {
      int32_t dot = 0;
      for (int g = 2 * k; g < 2 * k + 2; ++g) {
        int32_t group = 0;
        for (int v = g * kQ6kGroup; v < (g + 1) * kQ6kGroup; ++v) group += (q6k_level(block, v) - 32) * xq[v];
        dot += int32_t(int8_t(block[kQ6kScalesAt + g])) * group;
      }
      sums.acc += (s.d * xs[k]) * float(dot);
    }
  }
};
