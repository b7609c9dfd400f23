#!/usr/bin/env bash
# Builds the test-only Spin host (tests/spin-host: wasmtime + wasmtime-wasi-http + an in-memory
# Spin key-value store) once per version and puts it at target/spin-host/bin/spin-test-host,
# where the end-to-end suite (E2E_HOST=spin) looks for it.
#
# wasmtime takes ~15 CPU-minutes to compile, so the binary is kept outside the work tree, under
# $SPIN_HOST_CACHE (default ~/.cache/edge-shop/spin-test-host/), keyed by a hash of the host's
# manifest, lock file, sources and WIT: a fresh clone on the same machine (CI) reuses it, and
# any change to the host builds a new one.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST=tests/spin-host
KEY=$(cat "$HOST/Cargo.toml" "$HOST/Cargo.lock" "$HOST"/src/*.rs "$HOST"/wit/*.wit | sha256sum | cut -c1-16)
CACHE="${SPIN_HOST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/edge-shop/spin-test-host}/$KEY"
if [ ! -x "$CACHE/bin/spin-test-host" ]; then
  echo "spin-test-host: building $KEY (wasmtime: ~8 minutes on 2 cores, once per version)"
  t0=$SECONDS
  # Its own target dir: the host is its own workspace.
  CARGO_TARGET_DIR=target/spin-host cargo install --quiet --locked --path "$HOST" --root "$CACHE.tmp"
  rm -rf "$CACHE" && mv "$CACHE.tmp" "$CACHE"
  # The binary is cached; its build tree (over a GB of wasmtime objects) is not worth the disk.
  rm -rf target/spin-host/release
  echo "spin-test-host: built in $((SECONDS - t0)) s"
fi
mkdir -p target/spin-host/bin
# Copy, then rename: a host still running from an earlier run keeps its file.
cp "$CACHE/bin/spin-test-host" target/spin-host/bin/spin-test-host.new
mv -f target/spin-host/bin/spin-test-host.new target/spin-host/bin/spin-test-host
