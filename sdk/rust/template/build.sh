#!/usr/bin/env bash
# Builds {{name}} into a WebAssembly component: <OUT_DIR or build>/{{name}}.wasm
#
#   ./build.sh            # -> build/{{name}}.wasm
#   ./build.sh OUT_DIR    # -> OUT_DIR/{{name}}.wasm
#
# Needs Rust 1.95 or newer with the wasm32-wasip2 target
# (`rustup target add wasm32-wasip2`). CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-build}"

command -v cargo >/dev/null || {
    echo "cargo not found: install Rust (rustup), then: rustup target add wasm32-wasip2" >&2
    exit 1
}
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "the wasm32-wasip2 target is missing: rustup target add wasm32-wasip2" >&2
    exit 1
fi

cargo build --release --target wasm32-wasip2
mkdir -p "$out"
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{name_snake}}.wasm" "$out/{{name}}.wasm"
echo "$out/{{name}}.wasm"
