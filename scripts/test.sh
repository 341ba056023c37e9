#!/usr/bin/env bash
# `npm test`: the format and lint check (scripts/lint.sh), then every test, on a software WebGPU
# adapter when no GPU driver is configured.
# Installs the system pieces the tests need when missing (as root): Debian's PyTorch (the
# independent oracle for HF parity tests) and, via software-webgpu.sh, Chromium + Mesa lavapipe.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing python3-torch (PyTorch oracle for the parity tests)..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch python3-numpy >/dev/null
  else
    echo "The parity tests need Debian's PyTorch: sudo apt-get install python3-torch python3-numpy" >&2
    exit 1
  fi
fi
# Format and lint first (biome.json; fast): a style slip fails here, before the long test run.
bash scripts/lint.sh
mkdir -p test-artifacts
set +e
bash scripts/with-webgpu.sh npx vitest run --reporter=default --reporter=json --outputFile.json=test-artifacts/vitest.json "$@"
status=$?
set -e
# A plain summary line ("N passed, N failed") for tools that read the closing line.
node -e '
  const r = JSON.parse(require("fs").readFileSync("test-artifacts/vitest.json", "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' 2>/dev/null || true
exit $status
