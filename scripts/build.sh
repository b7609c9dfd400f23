#!/usr/bin/env bash
# Builds the wasm artifacts, each only when its sources changed:
#   public/pkg/shop-HASH.js + _bg.wasm  the hydrate bundle (browser), and style-HASH.css
#   edge/build/worker/shim.mjs + wasm   the worker (workerd), via worker-build
# wrangler.toml runs this as its build command; scripts/dev.sh and scripts/test.sh call it first.
#   scripts/build.sh spin               the hydrate bundle and the Spin component instead:
#   target/spin/wasm32-wasip2/release/edge_spin.wasm  (spin.toml's build command)
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

# True when $1 is missing or any Rust source, style, manifest or lock file is newer than it.
stale() {
  [ ! -e "$1" ] || [ -n "$(find app edge/src edge/core/src edge/core/Cargo.toml edge/Cargo.toml Cargo.toml Cargo.lock \
    -newer "$1" -type f -print -quit)" ]
}

# The browser's files are named by their content hash, so they can be cached forever
# (public/_headers marks /pkg/* immutable); the names reach the worker at compile time.
ASSETS=target/hydrate/asset-names.env
if stale "$ASSETS" || [ "${FORCE_BUILD:-}" = 1 ]; then
  echo "build: hydrate bundle"
  t0=$SECONDS
  # A target dir of its own: worker-build compiles with WASM_BINDGEN_USE_JS_SYS=1, plain cargo
  # without it, and sharing one dir would let the two reuse each other's wasm-bindgen output.
  CARGO_TARGET_DIR=target/hydrate cargo build --quiet -p app-hydrate --lib --release --target wasm32-unknown-unknown
  raw=target/hydrate/wasm32-unknown-unknown/release/app_hydrate.wasm
  bundle="shop-$(sha256sum "$raw" | cut -c1-12)"
  style="style-$(sha256sum app/style.css | cut -c1-12).css"
  rm -rf public/pkg && mkdir -p public/pkg
  "$WASM_BINDGEN_BIN" --target web --no-typescript --out-dir public/pkg --out-name "$bundle" "$raw"
  "$WASM_OPT_BIN" -Oz --strip-debug --strip-producers "public/pkg/${bundle}_bg.wasm" -o "public/pkg/${bundle}_bg.wasm.opt"
  mv "public/pkg/${bundle}_bg.wasm.opt" "public/pkg/${bundle}_bg.wasm"
  cp app/style.css "public/pkg/$style"
  printf 'SHOP_BUNDLE_NAME=%s\nSHOP_STYLE_HREF=/pkg/%s\n' "$bundle" "$style" > "$ASSETS"
  echo "build: hydrate bundle took $((SECONDS - t0)) s"
fi
set -a
# shellcheck source=/dev/null
. "$ASSETS"
set +a

size() { printf '%8d raw %8d gzip  %s\n' "$(stat -c %s "$1")" "$(gzip -9 -c "$1" | wc -c)" "$1"; }

if [ "${1:-}" = spin ]; then
  SPIN=target/spin/wasm32-wasip2/release/edge_spin.wasm
  if [ ! -e "$SPIN" ] || [ -n "$(find edge/spin -newer "$SPIN" -type f -print -quit)" ] || stale "$SPIN" \
    || [ "$ASSETS" -nt "$SPIN" ] || [ "${FORCE_BUILD:-}" = 1 ]; then
    echo "build: spin component"
    t0=$SECONDS
    # Its own target dir: a wasip2 build shares nothing with the native or worker builds.
    # Without symbol names: 7.2 -> 4.2 MB raw (a component keeps its WIT in other sections).
    CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_TARGET_DIR=target/spin \
      cargo build --quiet -p edge-spin --release --target wasm32-wasip2
    touch "$SPIN"
    echo "build: spin component took $((SECONDS - t0)) s"
  fi
  size "$SPIN"
  exit 0
fi

WORKER=edge/build/worker/shim.mjs
if stale "$WORKER" || [ "$ASSETS" -nt "$WORKER" ] || [ "${FORCE_BUILD:-}" = 1 ]; then
  echo "build: worker"
  t0=$SECONDS
  (cd edge && "$CARGO_BIN/worker-build" --release)
  # worker-build keeps the names section (readable stack traces) at ~2 MB raw / ~0.2 MB gzip;
  # ship without it unless SHOP_KEEP_NAMES=1 (a deployment being debugged).
  if [ "${SHOP_KEEP_NAMES:-}" != 1 ]; then
    "$WASM_OPT_BIN" edge/build/index_bg.wasm --strip-debug --strip-producers \
      --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue \
      -o edge/build/index_bg.wasm
  fi
  touch "$WORKER"
  echo "build: worker took $((SECONDS - t0)) s"
fi

size edge/build/index_bg.wasm
size "public/pkg/${SHOP_BUNDLE_NAME}_bg.wasm"
