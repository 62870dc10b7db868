#!/usr/bin/env bash
# The full test suite. Installs what the tests need and a fresh machine
# lacks (the wasm32-wasip2 target, the Tansu Kafka broker), then runs every
# test of the workspace. The Kafka tests start their own brokers.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
PROJECTOR_TANSU="$(./scripts/install-tansu.sh)"
export PROJECTOR_TANSU
cargo test --workspace --release "$@"
