#!/usr/bin/env bash
# Builds the Worker into pkg/ with worker-build, using only tools installed from the package
# registries (scripts/setup.sh): worker-build would otherwise download wasm-bindgen from GitHub.
# wrangler runs this as its [build] command; SWITCHYARD_SKIP_BUILD=1 reuses an existing pkg/
# (the end-to-end tests build once, then start wrangler dev several times).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/assemble-assets.sh
if [[ -n "${SWITCHYARD_SKIP_BUILD:-}" && -f pkg/worker/shim.mjs ]]; then
  echo "build-worker: SWITCHYARD_SKIP_BUILD is set, reusing pkg/"
  exit 0
fi
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
# The `worker` profile (Cargo.toml) builds for size: the free plan caps the script at 3 MiB gzipped.
exec worker-build --profile worker -d pkg
