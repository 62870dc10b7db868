#!/usr/bin/env bash
# Builds build/{{name}}.wasm (or <folder>/{{name}}.wasm), a Projector
# component: ./build.sh [folder]
#
# Needs clang with wasi-libc, wit-bindgen-cli 0.63.0 and jco 1.35.0; see
# sdk/README.md. Tool locations come from CLANG, WIT_BINDGEN and JCO (default:
# on PATH, and ~/.cargo/bin/wit-bindgen).
set -euo pipefail
out="$(mkdir -p "${1:-$(dirname "$0")/build}" && cd "${1:-$(dirname "$0")/build}" && pwd)"
cd "$(dirname "$0")"
if [ -z "${WIT_BINDGEN:-}" ] && ! command -v wit-bindgen >/dev/null && [ -x "$HOME/.cargo/bin/wit-bindgen" ]; then
    export WIT_BINDGEN="$HOME/.cargo/bin/wit-bindgen"
fi
PROJECTOR_WIT="$PWD/wit" ./sdk/build-component.sh "$out/{{name}}.wasm" projection.c
echo "$out/{{name}}.wasm"
