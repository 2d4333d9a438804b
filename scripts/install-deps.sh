#!/usr/bin/env bash
# Installs what building and testing jetmoe.cpp needs on a fresh Debian 12 machine:
# the toolchain and libraries (apt), and the tokenizer test assets (npm; see tools/tokenizer).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build pkg-config nlohmann-json3-dev libcli11-dev googletest libgtest-dev
          sentencepiece libsentencepiece-dev)
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

if [ -x tools/tokenizer/fetch_assets.sh ]; then
  tools/tokenizer/fetch_assets.sh build/tokenizer-assets
fi
