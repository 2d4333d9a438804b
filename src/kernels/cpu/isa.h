// Instruction-set levels the CPU kernels are compiled for, and which one this machine runs.
// Every level is a superset of the one before; each has its own kernel table (kernel_table.h).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace jetmoe::kernels::cpu {

enum class Isa : uint8_t {
  Scalar,      // portable C++, any CPU
  Avx2,        // AVX2 + FMA + F16C
  Avx512,      // AVX-512 F/BW/VL/DQ
  Avx512Bf16,  // AVX-512 with AVX512_BF16 and AVX512_VNNI dot products (bf16-activation products,
               // int8 products for quantized weights)
};

std::string_view isa_name(Isa isa);  // "scalar", "avx2", "avx512", "avx512bf16"
bool parse_isa(std::string_view name, Isa* out);

// The best level this CPU and OS support, capped by the JETMOE_ISA environment variable when
// it names a lower level (to compare paths in benchmarks). Detected once; never changes.
Isa best_isa();

// The best level the hardware runs, whatever JETMOE_ISA says.
Isa hardware_isa();

// Every level this machine can run, lowest first, whatever JETMOE_ISA says (tests force each).
std::vector<Isa> runnable_isas();

}  // namespace jetmoe::kernels::cpu
