#!/usr/bin/env bash
# PyTorch vs jetmoe on one checkpoint, in one run: runs bench/pytorch_peer.py with PyTorch's matrix
# products on OpenBLAS instead of Debian's reference libblas (which does ~1 GFLOP/s and would make
# any ratio meaningless). OpenBLAS's OpenMP build shares libtorch's OpenMP thread pool; its pthread
# build adds a second pool that fights torch's threads for the cores (measured here: 5-10x slower
# prefill). OMP_WAIT_POLICY=PASSIVE stops idle OpenMP threads spinning, which on a machine shared
# with other work costs PyTorch as much again.
#
# usage: bench/peer_compare.sh -m DIR [pytorch_peer.py flags: -p 128 -n 32 -t 2 --train-batch 4 ...]
#
# Environment:
#   JETMOE            the jetmoe binary (default: build/cli/jetmoe)
#   PEER_OPENBLAS_DIR a directory holding OpenBLAS's libblas.so.3 (default: Debian's
#                     libopenblas0-openmp if installed, else that package unpacked into
#                     build/peer-openblas with `apt-get download`; nothing is installed system-wide)
#   OMP_WAIT_POLICY   default PASSIVE
#   PEER_OPENBLAS_CORETYPE  OpenBLAS kernel set (default: SkylakeX on AVX-512 CPUs: OpenBLAS 0.3.21
#                     does not recognise newer ones and falls back to Haswell's AVX2 kernels)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
jetmoe="${JETMOE:-$root/build/cli/jetmoe}"

find_openblas() {
  local system=/usr/lib/x86_64-linux-gnu/openblas-openmp
  if [[ -n "${PEER_OPENBLAS_DIR:-}" ]]; then echo "$PEER_OPENBLAS_DIR"; return; fi
  if [[ -f "$system/libblas.so.3" ]]; then echo "$system"; return; fi
  local cache="$root/build/peer-openblas"
  if [[ ! -f "$cache/$system/libblas.so.3" ]] && command -v apt-get >/dev/null; then
    echo "peer_compare: unpacking Debian's libopenblas0-openmp into $cache" >&2
    mkdir -p "$cache"
    (cd "$cache" && apt-get download -q libopenblas0-openmp >&2 && dpkg-deb -x libopenblas0-openmp_*.deb .) ||
      echo "peer_compare: could not fetch OpenBLAS" >&2
  fi
  if [[ -f "$cache/$system/libblas.so.3" ]]; then echo "$cache/$system"; fi
}

blas_dir="$(find_openblas)"
if [[ -n "$blas_dir" ]]; then
  export LD_LIBRARY_PATH="$blas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if [[ -n "${PEER_OPENBLAS_CORETYPE:-}" ]]; then
    export OPENBLAS_CORETYPE="$PEER_OPENBLAS_CORETYPE"
  elif grep -qw avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
  fi
else
  echo "peer_compare: no OpenBLAS found; PyTorch's fp32 products run on the reference BLAS" >&2
fi

export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec /usr/bin/python3 "$here/pytorch_peer.py" --jetmoe "$jetmoe" "$@"
