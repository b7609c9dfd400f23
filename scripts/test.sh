#!/usr/bin/env bash
# Runs every test: installs what is missing (wasm target, npm packages, wasm-bindgen-cli,
# worker-build, Chromium + chromedriver), builds the worker and the hydrate bundle, then runs
#   1. the native unit and router tests (edge-core, app, origin),
#   2. the end-to-end suite against `wrangler dev` with a real browser (tests/),
#   3. the origin admin UI end to end (tests/tests/admin_ui.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

bash scripts/setup.sh test
bash scripts/build.sh

echo "== native tests"
cargo test --workspace --exclude edge --exclude edge-spin --exclude app-hydrate --exclude shop-e2e
echo "== end-to-end (wrangler dev + Chromium)"
cargo test -p shop-e2e --test e2e
echo "== admin UI end-to-end (origin admin + wrangler dev + Chromium)"
cargo test -p shop-e2e --test admin_ui

echo "== all tests passed in $(( $(date +%s) - started )) s"
