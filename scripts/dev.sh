#!/usr/bin/env bash
# Runs the shop locally: installs what is missing, builds, starts the origin (127.0.0.1:8080) and
# `wrangler dev` (127.0.0.1:8787, local KV and Durable Objects in .wrangler/state), publishes the
# demo catalog, prints the URL and keeps running until Ctrl-C. Placed orders flow from the
# worker's outbox to the origin (its SQLite data in origin-data/).
#   ADMIN_TOKEN   admin token of the local worker (default: a random one, printed)
#   ORIGIN_TOKEN  token of the origin's internal routes (default: a random one)
#   PORT          worker port (default 8787)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh
cargo build --quiet --release -p origin --bins

PORT="${PORT:-8787}"
ORIGIN_ADDR="${ORIGIN_ADDR:-127.0.0.1:8080}"
ADMIN_TOKEN="${ADMIN_TOKEN:-dev-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}"
ORIGIN_TOKEN="${ORIGIN_TOKEN:-origin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}"
PERSONALIZATION_SECRET="${PERSONALIZATION_SECRET:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}"
export ADMIN_TOKEN ORIGIN_TOKEN

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

set -m  # each background job in its own process group, so cleanup stops workerd too
target/release/origin serve --addr "$ORIGIN_ADDR" --data-dir origin-data &
pids+=($!)
WRANGLER_SEND_METRICS=false CI=true node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$PORT" \
  --inspector-port 0 --show-interactive-dev-session=false --var "ADMIN_TOKEN:$ADMIN_TOKEN" \
  --var "ORIGIN_URL:http://$ORIGIN_ADDR" --var "ORIGIN_TOKEN:$ORIGIN_TOKEN" \
  --var "PERSONALIZATION_SECRET:$PERSONALIZATION_SECRET" </dev/null &
pids+=($!)
set +m

for _ in $(seq 1 240); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[1]}" 2>/dev/null || { echo "dev: wrangler dev exited" >&2; exit 1; }
  sleep 0.5
done
target/release/shopctl publish origin/data/demo-catalog.json --edge "http://127.0.0.1:$PORT"

cat <<MSG

  Shop:    http://127.0.0.1:$PORT/
  Product: http://127.0.0.1:$PORT/p/KIT-001
  Cart:    http://127.0.0.1:$PORT/cart   (test cards: tok_visa, tok_declined, tok_timeout)
  API:     http://127.0.0.1:$PORT/api/products
  Origin:  http://$ORIGIN_ADDR/healthz
    orders:  curl -H "Authorization: Bearer $ORIGIN_TOKEN" http://$ORIGIN_ADDR/internal/orders
  Admin token: $ADMIN_TOKEN
    republish: ADMIN_TOKEN=$ADMIN_TOKEN target/release/shopctl publish FILE --edge http://127.0.0.1:$PORT

  Ctrl-C stops both.
MSG
wait "${pids[1]}"
