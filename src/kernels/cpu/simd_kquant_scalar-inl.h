// The k-quant super-block policy of matmul_kquant-inl.h in portable C++, for the layout L (Q4kLayout
// or Q5kLayout): the oracle's arithmetic (kernels/ref/quantized_ops.h) in the oracle's order, so
// this level equals it bit for bit. Included by isa_scalar.cc inside its namespace; no includes here.

template <class L>
struct KQuantScalar {
  using Layout = L;
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

  // Level j of sub-block k: the nibble, and in Q5_K the fifth bit (bit k of high-bit byte j).
  static int32_t level(const uint8_t* block, int k, int j) {
    const int32_t low = (block[L::kLevelsAt + (k / 2) * kQuantBlock + j] >> ((k % 2) * 4)) & 0x0f;
    if constexpr (L::kHighBits) return low | ((block[L::kHighBitsAt + j] >> k) & 1) << 4;
    return low;
  }

  static void accumulate(const uint8_t* block, const Scales& s, const int8_t* xq, const float* xs, const int32_t* xsum,
                         Sums& sums) {
    for (int k = 0; k < kQ4kSubBlocks; ++k) {
      int32_t dot = 0;
      for (int j = 0; j < kQuantBlock; ++j) dot += level(block, k, j) * xq[k * kQuantBlock + j];
      sums.main += (s.d * xs[k]) * float(int32_t(s.packed.sc[k]) * dot);
      sums.min += (s.dmin * xs[k]) * float(int32_t(s.packed.m[k]) * xsum[k]);
    }
  }
};
