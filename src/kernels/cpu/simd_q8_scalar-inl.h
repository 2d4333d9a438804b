// 8-bit block primitives for the quantized products (matmul_q8-inl.h), portable C++: one block
// of 32 levels as a plain array, one float accumulator. Included by isa_scalar.cc inside its
// namespace; no includes here.

struct Q8Scalar {
  struct Block {
    int8_t v[32];
  };
  using Acc = float;

  static Acc zero() { return 0.0f; }
  static Acc add(Acc a, Acc b) { return a + b; }
  static Acc fma(Acc p, float s, Acc acc) { return acc + p * s; }
  static float reduce(Acc a) { return a; }
  static float f16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
  }

  static Block load_x(const int8_t* x) {
    Block b;
    std::memcpy(b.v, x, 32);
    return b;
  }
  static Block load_q8_0(const uint8_t* qs) { return load_x(reinterpret_cast<const int8_t*>(qs)); }
  // The 32 nibbles in value order, 0 .. 15 (the level is nibble - 8).
  static Block load_q4_0(const uint8_t* qs) {
    Block b;
    for (int j = 0; j < 16; ++j) {
      b.v[j] = int8_t(qs[j] & 0x0f);
      b.v[j + 16] = int8_t(qs[j] >> 4);
    }
    return b;
  }

  // Sums of level x activation over a block, exact integers as a float.
  static Acc dot_q8_0(const Block& w, const Block& x, int32_t) {
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) sum += int32_t(w.v[j]) * x.v[j];
    return float(sum);
  }
  static Acc dot_q4_0(const Block& w, const Block& x, int32_t x_sum) {
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) sum += int32_t(w.v[j]) * x.v[j];
    return float(sum - 8 * x_sum);
  }

  // One block of activations as kernels::quantize_row_q8 quantizes it, plus the sum of its levels.
  static void quantize_block(const float* x, int8_t* q, float* scale, int32_t* sum) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f >= std::numeric_limits<float>::min() ? amax / 127.0f : 0.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) {
      const float v = std::nearbyint(x[j] * inv);
      q[j] = int8_t(v == v ? std::clamp(v, -127.0f, 127.0f) : 0.0f);
      s += q[j];
    }
    *scale = d;
    *sum = s;
  }
};
