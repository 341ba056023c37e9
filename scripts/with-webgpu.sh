#!/usr/bin/env bash
# Runs a command with a software WebGPU adapter available to Node (Dawn) when no real GPU driver
# is configured. AGENTARK_WEBGPU=swiftshader picks Chromium's SwiftShader; default is Mesa lavapipe.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${VK_ICD_FILENAMES:-}" ]; then
  setup="$here/scripts/software-webgpu.sh"
  eval "$("$setup" ${AGENTARK_WEBGPU:-})"
fi
exec "$@"
