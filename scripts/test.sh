#!/usr/bin/env bash
# The full test suite. Installs what the tests need and a fresh machine
# lacks (the wasm32-wasip2 target, the Tansu Kafka broker, the JS and
# Python examples' build tools), then runs every
# test of the workspace. The Kafka tests start their own brokers.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
# The JavaScript and TypeScript examples (Node and npm; componentize-js from
# npm into target/tools/js), which runtime/tests/js_examples.rs runs.
./scripts/build-js-examples.sh
# Their unit tests and the JS SDK's, under Node without a host.
node --harmony-json-parse-with-source --import ./sdk/js/testing/register.js \
    --test sdk/js/test/ examples/js/*/test.js
# The Python examples (componentize-py from PyPI into target/tools/python),
# which runtime/tests/python_examples.rs runs; the Python SDK's and the
# examples' unit tests, natively (one process per example: each is `app`).
./scripts/build-python-examples.sh
python3 -m unittest discover -q -s sdk/python/tests
for example in examples/python/*/; do
    (cd "$example" && python3 -m unittest -q test_app)
done
PROJECTOR_TANSU="$(./scripts/install-tansu.sh)"
export PROJECTOR_TANSU
cargo test --workspace --release "$@"
