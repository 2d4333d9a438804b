#!/usr/bin/env bash
# Builds bench/kernel_lab.cc against the static libraries of a build directory and runs it.
#   bench/kernel_lab.sh [BUILD_DIR] [THREADS] [quant|gemm|train|attention]   (only the quantized-weight / the bf16 prefill / the bf16 training products / the prefill and decoding attention)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${2:-1}
ninja -C "$build" jetmoe_kernels jetmoe_core >/dev/null
g++ -std=c++20 -O2 -Isrc bench/kernel_lab.cc "$build/src/kernels/libjetmoe_kernels.a" "$build/src/core/libjetmoe_core.a" \
  -lpthread -o "$build/kernel_lab"
"$build/kernel_lab" "$threads" "${@:3}"
