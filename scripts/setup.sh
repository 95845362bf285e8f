#!/usr/bin/env bash
# Installs everything Switchyard needs to build, run and test, from package registries only
# (crates.io and npm): the wasm32 target, worker-build and the wasm-bindgen CLI at the exact
# versions Cargo.lock pins, and the npm tools from package-lock.json. With --browser (what
# scripts/test.sh passes) also Debian's chromium, which the playground's browser test drives
# (Playwright's own browser download needs more than the package registries). Safe to run again:
# each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

for tool in cargo rustup node npm; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is required but not installed" >&2; exit 1; }
done

# The version of a crate as Cargo.lock pins it.
locked_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# worker-build must match the worker crate; the wasm-bindgen CLI must match the wasm-bindgen
# crate exactly, or the generated bindings do not load.
worker_version=$(locked_version worker)
if [[ "$(worker-build --version 2>/dev/null)" != "$worker_version" ]]; then
  say "installing worker-build $worker_version"
  cargo install worker-build --version "$worker_version" --locked
fi
bindgen_version=$(locked_version wasm-bindgen)
if [[ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $bindgen_version" ]]; then
  say "installing wasm-bindgen-cli $bindgen_version"
  # Not --locked: the CLI's own lockfile pins a crate version that crates.io has since yanked.
  cargo install wasm-bindgen-cli --version "$bindgen_version"
fi

if [[ ! -x node_modules/.bin/wrangler ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing wrangler and the test tools (npm ci)"
  npm ci --no-audit --no-fund
fi

if [[ "${1:-}" == "--browser" ]] && ! command -v chromium >/dev/null; then
  say "installing Debian's chromium for the browser test (apt)"
  sudo=""
  [[ $EUID -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-dejavu-core
fi

if [[ ! -f .dev.vars ]]; then
  say "creating .dev.vars from .dev.vars.example (local secrets for wrangler dev)"
  cp .dev.vars.example .dev.vars
fi
say "ready"
