#!/usr/bin/env bash
# Runs every test: installs what is missing (wasm target, npm packages, wasm-bindgen-cli,
# worker-build, Chromium + chromedriver), builds the worker and the hydrate bundle, then runs
#   1. the native unit and router tests (edge-core, app, origin),
#   2. the end-to-end suite against `wrangler dev` with a real browser (tests/),
#   3. the origin admin UI end to end (tests/tests/admin_ui.rs),
#   4. the Spin build: its imports against Spin's world, then the end-to-end suite on it.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
# One pass over a clean tree gains nothing from incremental state (it was 4 GB of the target dir).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
disk() { echo "disk: target $(du -sh target 2>/dev/null | cut -f1), $(df -h --output=avail . | tail -1 | tr -d ' ') free"; }

bash scripts/setup.sh test
if cargo fmt --version >/dev/null 2>&1; then
  echo "== rustfmt"
  cargo fmt --all --check
else
  echo "== rustfmt: not installed with this toolchain, formatting not checked"
fi
bash scripts/build.sh
bash scripts/build.sh spin       # the Spin component (edge/spin, wasm32-wasip2)
bash scripts/spin-test-host.sh   # the test-only Spin host, reused while its version is unchanged

disk
echo "== native tests"
# `app` with its `ssr` feature: the origin's admin UI turns on Leptos' server side, so the
# storefront's server functions must compile as servers too.
cargo test --workspace --exclude edge --exclude edge-spin --exclude app-hydrate --exclude shop-e2e --features app/ssr
echo "== end-to-end (wrangler dev + Chromium)"
cargo test -p shop-e2e --test e2e
echo "== admin UI end-to-end (origin admin + wrangler dev + Chromium)"
cargo test -p shop-e2e --test admin_ui

echo "== Spin: the component imports only what Spin 3.x provides"
REQUIRE_SPIN_BUILD=1 cargo test -p shop-e2e --test spin_component
echo "== end-to-end on Spin (the Spin build under tests/spin-host + Chromium)"
E2E_HOST=spin cargo test -p shop-e2e --test e2e

disk
echo "== all tests passed in $(( $(date +%s) - started )) s"
