#!/usr/bin/env bash
# Builds the JavaScript and TypeScript example projections into components:
#
#   examples/js/<name>/index.js     -> target/guests/js/<name>.wasm
#   examples/ts/<name>/src/index.ts -> target/guests/ts/<name>.wasm
#
# Tools (componentize-js 0.23.0, jco 1.35.0, esbuild, typescript, pinned in
# scripts/js-tools/package-lock.json) are installed with `npm ci` into
# target/tools/js, again only when the lock file changes. Each example is
# bundled with the SDK (sdk/js) by esbuild into one ES module (TypeScript is
# compiled by tsc first), then made a component by componentize-js; that
# last step (about 30 s each) is skipped when neither the bundle, the WIT nor
# the tools changed. Needs Node >= 20 and npm; reaches only the npm registry.
#
# Usage: scripts/build-js-examples.sh [NAME...]   (default: every example)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/target/tools/js"
OUT="$ROOT/target/guests"
WIT="$ROOT/wit"

log() { printf '==> %s\n' "$*" >&2; }

command -v node >/dev/null || { echo "node is required (Node 20 or newer)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then
    echo "Node $(node --version) is too old: componentize-js needs Node 20 or newer" >&2
    exit 1
fi

sha() { sha256sum "$@" | sha256sum | cut -c1-64; }

# 1. Tools, from the committed lock file.
mkdir -p "$TOOLS"
LOCK_SUM="$(sha "$ROOT/scripts/js-tools/package.json" "$ROOT/scripts/js-tools/package-lock.json")"
if [ "$(cat "$TOOLS/.installed" 2>/dev/null || true)" != "$LOCK_SUM" ] || [ ! -d "$TOOLS/node_modules" ]; then
    log "installing JS build tools into ${TOOLS#"$ROOT"/}"
    cp "$ROOT/scripts/js-tools/package.json" "$ROOT/scripts/js-tools/package-lock.json" "$TOOLS/"
    # --ignore-scripts: esbuild's postinstall only re-checks its binary,
    # which npm already placed from @esbuild/linux-x64.
    (cd "$TOOLS" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$LOCK_SUM" >"$TOOLS/.installed"
fi
BIN="$TOOLS/node_modules/.bin"
# The SDK as the package `@projector/sdk`, for esbuild's resolution.
mkdir -p "$TOOLS/node_modules/@projector"
ln -sfn "$ROOT/sdk/js" "$TOOLS/node_modules/@projector/sdk"

# What a component depends on besides its bundle: the contract and the tools.
BASE_SUM="$(sha "$WIT"/*.wit "$TOOLS/package-lock.json")"

bundle() { # entry, output file
    NODE_PATH="$TOOLS/node_modules" "$BIN/esbuild" "$1" \
        --bundle --format=esm --platform=neutral --target=es2022 \
        --main-fields=module,main --external:'projector:*' \
        --log-level=warning --outfile="$2"
}

componentize() { # bundle, output .wasm
    local sum
    sum="$(sha "$1" <(echo "$BASE_SUM"))"
    if [ -f "$2" ] && [ "$(cat "$2.sum" 2>/dev/null || true)" = "$sum" ]; then
        log "${2#"$ROOT"/} is up to date"
        return
    fi
    log "componentize-js ${1#"$ROOT"/} -> ${2#"$ROOT"/}"
    rm -f "$2.sum"
    # `http` and `fetch-event` are off: the host links no wasi:http.
    node "$TOOLS/node_modules/@bytecodealliance/componentize-js/src/cli.js" "$1" \
        --wit "$WIT" --world-name projection --disable http fetch-event --out "$2.tmp"
    mv "$2.tmp" "$2"
    echo "$sum" >"$2.sum"
}

wanted() { # name
    [ "${#SELECTED[@]}" -eq 0 ] && return 0
    local n
    for n in "${SELECTED[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}

SELECTED=("$@")
mkdir -p "$OUT/js/build" "$OUT/ts/build"

for dir in "$ROOT"/examples/js/*/; do
    name="$(basename "$dir")"
    wanted "$name" || continue
    bundle "$dir/index.js" "$OUT/js/build/$name.js"
    componentize "$OUT/js/build/$name.js" "$OUT/js/$name.wasm"
done

for dir in "$ROOT"/examples/ts/*/; do
    name="$(basename "$dir")"
    wanted "$name" || continue
    log "tsc ${dir#"$ROOT"/}"
    rm -rf "$OUT/ts/build/$name"
    "$BIN/tsc" -p "$dir/tsconfig.json" --outDir "$OUT/ts/build/$name"
    bundle "$OUT/ts/build/$name/index.js" "$OUT/ts/build/$name.js"
    componentize "$OUT/ts/build/$name.js" "$OUT/ts/$name.wasm"
done

ls -l "$OUT"/js/*.wasm "$OUT"/ts/*.wasm 2>/dev/null | awk '{print $5, $9}' >&2
