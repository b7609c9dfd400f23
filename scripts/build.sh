#!/usr/bin/env bash
# Builds the two wasm artifacts, each only when its sources changed:
#   public/pkg/shop.js + shop_bg.wasm   the hydrate bundle (browser)
#   edge/build/worker/shim.mjs + wasm   the worker (workerd), via worker-build
# wrangler.toml runs this as its build command; scripts/dev.sh and scripts/test.sh call it first.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
ROOT="$PWD"
# Let worker-build use our pinned tools instead of downloading its own.
export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"

for tool in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN" "$CARGO_BIN/worker-build"; do
  [ -x "$tool" ] || { echo "build: $tool is missing; run scripts/setup.sh" >&2; exit 1; }
done

# True when $1 is missing or any Rust source, manifest or lock file is newer than it.
stale() {
  [ ! -e "$1" ] || [ -n "$(find app edge/src edge/core/src edge/core/Cargo.toml edge/Cargo.toml Cargo.toml Cargo.lock \
    -newer "$1" -type f -print -quit)" ]
}

BUNDLE=public/pkg/shop_bg.wasm
if stale "$BUNDLE" || [ "${FORCE_BUILD:-}" = 1 ]; then
  echo "build: hydrate bundle"
  t0=$SECONDS
  # A target dir of its own: worker-build compiles with WASM_BINDGEN_USE_JS_SYS=1, plain cargo
  # without it, and sharing one dir would let the two reuse each other's wasm-bindgen output.
  CARGO_TARGET_DIR=target/hydrate cargo build --quiet -p app-hydrate --lib --release --target wasm32-unknown-unknown
  mkdir -p public/pkg
  "$WASM_BINDGEN_BIN" --target web --no-typescript --out-dir public/pkg --out-name shop \
    target/hydrate/wasm32-unknown-unknown/release/app_hydrate.wasm
  "$WASM_OPT_BIN" -Oz --strip-debug --strip-producers "$BUNDLE" -o "$BUNDLE.opt"
  mv "$BUNDLE.opt" "$BUNDLE"
  echo "build: hydrate bundle took $((SECONDS - t0)) s"
fi

WORKER=edge/build/worker/shim.mjs
if stale "$WORKER" || [ "${FORCE_BUILD:-}" = 1 ]; then
  echo "build: worker"
  t0=$SECONDS
  (cd edge && "$CARGO_BIN/worker-build" --release)
  touch "$WORKER"
  echo "build: worker took $((SECONDS - t0)) s"
fi

size() { printf '%8d raw %8d gzip  %s\n' "$(stat -c %s "$1")" "$(gzip -9 -c "$1" | wc -c)" "$1"; }
size edge/build/index_bg.wasm
size "$BUNDLE"
