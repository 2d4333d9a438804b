#!/usr/bin/env bash
# Builds jetmoe.cpp and runs every test: the release build runs the whole suite; a second build
# with AddressSanitizer + UndefinedBehaviorSanitizer runs the suites that feed it bad input.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DJETMOE_SANITIZE=ON >/dev/null
ninja -C build-asan -j "$jobs"
# Everything that parses untrusted input, plus the CLI's error paths, under the sanitizers.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -R "${JETMOE_ASAN_TESTS:-Hostile|BadInput|Invalid|^Cli|Config|Safetensors|Checkpoint|Npy|Tokenizer|ServerApi|ServerBadInput|Request|Data}"
