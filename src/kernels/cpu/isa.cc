#include "kernels/cpu/isa.h"

#include <cstdlib>

#include "core/error.h"
#include "kernels/cpu/kernel_table.h"

namespace jetmoe::kernels::cpu {
namespace {

// GCC's __builtin_cpu_supports also checks that the OS saves the wide registers (XGETBV).
Isa detect_hardware() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  // Every CPU with AVX512_BF16 so far also has AVX512_VNNI; the level uses both.
  const bool bf16_vnni = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni");
  if (avx512) return bf16_vnni ? Isa::Avx512Bf16 : Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Isa::Avx2;
#endif
  return Isa::Scalar;
}

Isa detect() {
  Isa isa = hardware_isa();
  Isa cap;
  if (const char* env = std::getenv("JETMOE_ISA"); env && parse_isa(env, &cap) && cap < isa) isa = cap;
  return isa;
}

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512bf16";
  }
  return "?";
}

bool parse_isa(std::string_view name, Isa* out) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16}) {
    if (name == isa_name(isa)) {
      *out = isa;
      return true;
    }
  }
  return false;
}

Isa best_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa hardware_isa() {
  static const Isa isa = detect_hardware();
  return isa;
}

std::vector<Isa> runnable_isas() {
  std::vector<Isa> out;
  for (int level = 0; level <= int(hardware_isa()); ++level) out.push_back(Isa(level));
  return out;
}

const KernelTable& kernel_table(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return scalar_kernels();
    case Isa::Avx2: return avx2_kernels();
    case Isa::Avx512: return avx512_kernels();
    case Isa::Avx512Bf16: return avx512bf16_kernels();
  }
  return scalar_kernels();
}

const KernelTable& checked_kernel_table(Isa isa) {
  if (isa > hardware_isa())
    fail("this CPU cannot run the ", isa_name(isa), " kernels (it has ", isa_name(hardware_isa()), ")");
  return kernel_table(isa);
}

}  // namespace jetmoe::kernels::cpu
