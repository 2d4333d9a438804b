// The Q4_K super-block policy of matmul_q4k-inl.h in portable C++: the oracle's arithmetic
// (kernels/ref/quantized_ops.h) in the oracle's order, so this level equals it bit for bit.
// Included by isa_scalar.cc inside its namespace; no includes here.

struct Q4kScalar {
  struct Sums {
    float main;  // sum over sub-blocks of (d dx_k) (sc_k dot_k)
    float min;   // sum over sub-blocks of (dmin dx_k) (m_k s_k)
  };
  struct Scales {
    float d, dmin;
    Q4kScales packed;
  };

  static Sums zero() { return {0.0f, 0.0f}; }
  static float finish(const Sums& s) { return s.main - s.min; }

  static Scales load_scales(const uint8_t* block) {
    uint16_t d, dmin;
    std::memcpy(&d, block, 2);
    std::memcpy(&dmin, block + 2, 2);
    return {f16_to_f32(d), f16_to_f32(dmin), unpack_q4k_scales(block + kQ4kScalesAt)};
  }

  static void accumulate(const uint8_t* block, const Scales& s, const int8_t* xq, const float* xs, const int32_t* xsum,
                         Sums& sums) {
    const uint8_t* qs = block + kQ4kLevelsAt;
    for (int k = 0; k < kQ4kSubBlocks; ++k) {
      const uint8_t* group = qs + (k / 2) * kQuantBlock;
      const int shift = (k % 2) * 4;
      int32_t dot = 0;
      for (int j = 0; j < kQuantBlock; ++j) dot += int32_t((group[j] >> shift) & 0x0f) * xq[k * kQuantBlock + j];
      sums.main += (s.d * xs[k]) * float(int32_t(s.packed.sc[k]) * dot);
      sums.min += (s.dmin * xs[k]) * float(int32_t(s.packed.m[k]) * xsum[k]);
    }
  }
};
