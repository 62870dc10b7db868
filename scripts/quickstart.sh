#!/usr/bin/env bash
# Builds Projector and the example projections, starts `projector run` on the
# embedded log, publishes the sample events and prints queries to try.
# Starts from an empty `.quickstart/` folder each time; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

listen="${PROJECTOR_LISTEN:-127.0.0.1:7878}"
server="http://$listen"
work=".quickstart"

rustup target add wasm32-wasip2 >/dev/null
echo "==> building the runtime (first build: about 8 minutes on 2 cores)"
cargo build --release -p projector
echo "==> building the example projections (wasm32-wasip2 components)"
cargo build --profile guest --target wasm32-wasip2 --target-dir target/guests \
    -p order-totals -p account-balances

rm -rf "$work"
mkdir -p "$work/projections"
cp target/guests/wasm32-wasip2/guest/order_totals.wasm "$work/projections/order-totals.wasm"
cp target/guests/wasm32-wasip2/guest/account_balances.wasm "$work/projections/account-balances.wasm"

# Where cargo put it: CARGO_TARGET_DIR when set.
bin="${CARGO_TARGET_DIR:-target}/release/projector"
"$bin" run --data "$work/data" --modules "$work/projections" --listen "$listen" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "projector exited; see the messages above" >&2
        exit 1
    fi
    if "$bin" status --server "$server" >/dev/null 2>&1; then break; fi
    sleep 0.1
done

echo "==> publishing the sample events"
"$bin" publish orders examples/events/orders.jsonl --key-field customer --server "$server"
"$bin" publish accounts examples/events/accounts.jsonl --key-field account --server "$server"

# Wait until both projections have applied everything (lag 0).
for _ in $(seq 1 600); do
    if [ "$("$bin" status --json --server "$server" | grep -c '"lag": 0,')" -ge 2 ]; then break; fi
    sleep 0.1
done
"$bin" status --server "$server"

cat <<TXT

Projector is running on $server with order-totals and account-balances.
Open $server/ in a browser for the dashboard (status, lag, rate, state
browser), or try, in another terminal:

  $bin status
  $bin query order-totals customer/alice
  $bin query order-totals --prefix customer/
  $bin query order-totals --query top-customers --args '{"n": 3}'
  $bin query account-balances --query balance --args '{"account": "acc-100"}'
  curl -s $server/v1/projections/order-totals/state/customer%2Falice
  echo '{"type":"OrderPlaced","order_id":"o-9000","customer":"alice","amount_cents":500}' \\
    | $bin publish orders --key-field customer
  $bin query order-totals customer/alice --min-offsets OFFSETS
      # read your write: OFFSETS is the "next offsets" line publish printed
  curl -s $server/metrics | grep projector_events_applied_total

Drop another .wasm into $work/projections to load it, or a new version over
an existing one to hot-reload it. Press Ctrl-C to stop.
TXT
wait "$pid"
