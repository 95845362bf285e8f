#!/usr/bin/env bash
# Sets everything up, then runs the router locally with wrangler dev (local workerd) on
# http://127.0.0.1:8787. Extra arguments go to wrangler dev.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The decision log's tables, in wrangler dev's local D1 (.wrangler/state); applied ones are skipped.
CI=1 npx wrangler d1 migrations apply switchyard-decisions --local
exec npx wrangler dev --ip 127.0.0.1 --port 8787 "$@"
