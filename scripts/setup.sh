#!/usr/bin/env bash
# Installs what building and running the shop needs, skipping whatever is already present.
#   scripts/setup.sh        tools to build and run the shop (dev)
#   scripts/setup.sh test   plus what the tests need (Chromium and chromedriver)
# Everything comes from the package registries (apt, npm, crates.io); versions are pinned.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen version in Cargo.lock
WORKER_BUILD_VERSION=0.8.7     # must equal the worker crate version
WASM_TOOLS_VERSION=1.263.0     # checks the Spin component's imports (tests/tests/spin_component.rs)
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"

step() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v curl >/dev/null || need_apt+=(curl)
# A C compiler: the origin's SQLite (rusqlite, bundled) is compiled from its C source.
command -v cc >/dev/null || need_apt+=(gcc libc6-dev)
if [ "${1:-}" = test ]; then
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

for target in wasm32-unknown-unknown wasm32-wasip2; do   # the worker and browser; Spin
  if ! rustup target list --installed | grep -qx "$target"; then
    step "rustup: $target"
    rustup target add "$target"
  fi
done

# npm packages from the committed lock file; reinstalled when the lock file is newer.
if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci (wrangler, binaryen, esbuild)"
  npm ci --no-audit --no-fund --loglevel=error
fi

installed_version() { "$CARGO_BIN/$1" --version 2>/dev/null | awk '{print $NF}'; }

if [ "$(installed_version wasm-bindgen)" != "$WASM_BINDGEN_VERSION" ]; then
  step "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (several minutes, once)"
  # Not --locked: one dependency in its lock file is no longer on crates.io.
  cargo install --quiet wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi
if [ "$(installed_version worker-build)" != "$WORKER_BUILD_VERSION" ]; then
  step "cargo install worker-build $WORKER_BUILD_VERSION (a few minutes, once)"
  cargo install --quiet worker-build --version "$WORKER_BUILD_VERSION" --locked --force
fi
if [ "${1:-}" = test ] && [ "$(installed_version wasm-tools)" != "$WASM_TOOLS_VERSION" ]; then
  step "cargo install wasm-tools $WASM_TOOLS_VERSION (a minute or two, once)"
  cargo install --quiet wasm-tools --version "$WASM_TOOLS_VERSION" --locked --no-default-features --features component --force
fi
