#!/usr/bin/env bash
# Fuzzes the HTTP API against its own OpenAPI document (GET /openapi.json)
# with schemathesis: builds the runtime and the example projections, starts
# `projector run` on a fresh data folder, publishes the sample events, runs
# schemathesis with a bounded number of examples per operation, and stops
# the server. Fails on any 5xx, any answer whose status or body the
# document does not describe.
#
# schemathesis (pinned with its dependencies in scripts/api-fuzz/
# requirements.txt) is installed from PyPI into a venv under
# target/tools/schemathesis, again only when that file changes.
#
# Usage: scripts/api-fuzz.sh [extra schemathesis arguments]
#   API_FUZZ_EXAMPLES=N  examples per operation (default 20)
#   PROJECTOR_BIN=PATH   a projector binary built already (.ci/run passes
#                        the one its test build made); else built here
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$ROOT/target/tools/schemathesis"
REQUIREMENTS="$ROOT/scripts/api-fuzz/requirements.txt"

log() { printf '==> %s\n' "$*" >&2; }

SUM="$(sha256sum "$REQUIREMENTS" | cut -c1-64)"
if [ "$(cat "$VENV/.installed" 2>/dev/null || true)" != "$SUM" ] || [ ! -x "$VENV/bin/schemathesis" ]; then
    log "installing schemathesis into ${VENV#"$ROOT"/}"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$SUM" >"$VENV/.installed"
fi

rustup target add wasm32-wasip2 >/dev/null
log "building the runtime and the example projections"
if [ -z "${PROJECTOR_BIN:-}" ]; then
    cargo build --release -p projector
fi
cargo build --profile guest --target wasm32-wasip2 --target-dir target/guests \
    -p order-totals -p account-balances

WORK="$(mktemp -d)"
mkdir -p "$WORK/projections"
cp target/guests/wasm32-wasip2/guest/order_totals.wasm "$WORK/projections/order-totals.wasm"
cp target/guests/wasm32-wasip2/guest/account_balances.wasm "$WORK/projections/account-balances.wasm"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
SERVER="http://127.0.0.1:$PORT"
BIN="${PROJECTOR_BIN:-$TARGET/release/projector}"

"$BIN" run --data "$WORK/data" --modules "$WORK/projections" --listen "127.0.0.1:$PORT" \
    2>"$WORK/server.log" &
PID=$!
stop() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap stop EXIT INT TERM

for _ in $(seq 1 600); do
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "projector exited:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    if "$BIN" status --server "$SERVER" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
"$BIN" publish orders examples/events/orders.jsonl --key-field customer --server "$SERVER" >/dev/null
"$BIN" publish accounts examples/events/accounts.jsonl --key-field account --server "$SERVER" >/dev/null

log "schemathesis against $SERVER/openapi.json"
status=0
# From the scratch folder: schemathesis keeps its cache in the working folder.
(cd "$WORK" && "$VENV/bin/schemathesis" run "$SERVER/openapi.json" \
    --url "$SERVER" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
    --max-examples "${API_FUZZ_EXAMPLES:-20}" \
    --seed 1 \
    --no-color \
    "$@") || status=$?
if ! kill -0 "$PID" 2>/dev/null; then
    echo "projector died during the run:" >&2
    tail -50 "$WORK/server.log" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "server log (last 50 lines):" >&2
    tail -50 "$WORK/server.log" >&2
fi
exit "$status"
