#!/usr/bin/env bash
# `npm run lint` (and the first step of `npm test`): Biome's formatter and linter over the whole
# tree (biome.json), then the one limit Biome cannot enforce: no source line over 160 characters
# (long string literals are left alone by the formatter; break them by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
npx biome ci .
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  files=$(git ls-files -- '*.ts' '*.js' '*.css' '*.html' '*.sh' '*.wgsl' '*.py' ':!public')
else # an unpacked tarball: the same files by name
  files=$(find . -path ./node_modules -prune -o -path ./public -prune -o -type f \( -name '*.ts' -o -name '*.js' \
    -o -name '*.css' -o -name '*.html' -o -name '*.sh' -o -name '*.wgsl' -o -name '*.py' \) -print | sed 's|^\./||')
fi
long=$(echo "$files" | xargs awk 'length > 160 { printf "%s:%d: %d characters\n", FILENAME, FNR, length }')
if [ -n "$long" ]; then
  echo "$long"
  echo "lines over 160 characters: $(echo "$long" | wc -l) (break them by hand)" >&2
  exit 1
fi
