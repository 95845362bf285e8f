#!/usr/bin/env bash
# Gathers the Worker's static assets into pkg/assets/ (wrangler.toml [assets]): the model folder's
# files at the root, where only the Worker reads them (model/.assetsignore, copied along, keeps
# the docs and tooling out), and the playground page under playground/, the one part the Worker
# serves to the public (README, "Playground"). Files are hard links where the file system allows,
# so the 27 MB of model costs no copy. Run by scripts/build-worker.sh on every build.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf pkg/assets
mkdir -p pkg/assets
cp -al model/. pkg/assets/ 2>/dev/null || cp -a model/. pkg/assets/
cp -a playground pkg/assets/playground
