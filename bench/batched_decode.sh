#!/usr/bin/env bash
# Builds bench/batched_decode.cc against the static libraries of a build directory and runs it.
#   bench/batched_decode.sh BUILD_DIR MODEL_DIR [THREADS] [BATCH] [TOKENS] [ROUNDS] [PROMPT] [MODES]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?build directory}
shift
ninja -C "$build" jetmoe_model jetmoe_formats jetmoe_kernels jetmoe_core >/dev/null
g++ -std=c++20 -O2 -Isrc bench/batched_decode.cc "$build/src/model/libjetmoe_model.a" \
  "$build/src/formats/libjetmoe_formats.a" "$build/src/kernels/libjetmoe_kernels.a" "$build/src/core/libjetmoe_core.a" \
  -lpthread -o "$build/batched_decode"
"$build/batched_decode" "$@"
