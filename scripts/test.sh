#!/usr/bin/env bash
# Runs every test: native tests of the core and CLI, the token-sample check, then the Worker
# built once and driven end to end through wrangler dev with the official openai client, and the
# playground page in Debian's chromium (screenshots in tests/e2e/.output/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
export PATH="$HOME/.cargo/bin:$PATH"

echo "== native tests (cargo test)"
cargo test --workspace --all-targets

echo "== token sample matches the real tokenizers"
node scripts/token-reference.mjs --check

echo "== building the Worker"
bash scripts/build-worker.sh

echo "== end-to-end tests (wrangler dev + fake upstream + openai client)"
# Each test has a timeout (package.json `test:e2e`), each request a deadline (tests/e2e/harness.mjs).
npm run --silent test:e2e
