// One-lane "vectors" for the kernel templates: the portable fallback. Included by
// isa_scalar.cc inside its own namespace; no includes here.

struct Simd {
  using V = float;
  static constexpr int N = 1;
  static constexpr int kMr = 4, kNv = 4;  // 16 scalar accumulators

  static V zero() { return 0.0f; }
  static V set1(float v) { return v; }
  static V load(const float* p) { return *p; }
  static V load_n(const float* p, int n) { return n > 0 ? *p : 0.0f; }
  static void store(float* p, V v) { *p = v; }
  static void store_n(float* p, V v, int n) {
    if (n > 0) *p = v;
  }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static V fma(V a, V b, V c) { return a * b + c; }  // std::fma is a slow library call without FMA hardware
  static float reduce_add(V v) { return v; }
  static float reduce_max(V v) { return v; }

  static V load_bf16(const uint16_t* p) { return bf16_to_f32(*p); }
  static V load_bf16_n(const uint16_t* p, int n) { return n > 0 ? bf16_to_f32(*p) : 0.0f; }
  static V load_f16(const uint16_t* p) { return f16_to_f32(*p); }
  static V load_f16_n(const uint16_t* p, int n) { return n > 0 ? f16_to_f32(*p) : 0.0f; }
  static void store_f16(uint16_t* p, V v) { *p = f32_to_f16(v); }
  static void store_f16_n(uint16_t* p, V v, int n) {
    if (n > 0) *p = f32_to_f16(v);
  }
  static V round_bf16(V x) { return bf16_to_f32(f32_to_bf16(x)); }
  static void transpose(V*) {}
  static V exp(V x) { return std::exp(x); }
};
