#!/usr/bin/env bash
# Builds {{name}} into a WebAssembly component: <OUT_DIR or build>/{{name}}.wasm
#
#   ./build.sh            # -> build/{{name}}.wasm
#   ./build.sh OUT_DIR    # -> OUT_DIR/{{name}}.wasm
#
# src/ is compiled by tsc, then it and the SDK (sdk/) are bundled by esbuild into one ES module,
# which componentize-js makes a component. The tools live in the folder
# PROJECTOR_JS_TOOLS names (default ~/.cache/projector/js-tools); README.md
# says how to install them. Needs Node 20 or newer.
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-build}"
tools="${PROJECTOR_JS_TOOLS:-$HOME/.cache/projector/js-tools}"
packages="@bytecodealliance/componentize-js@0.23.0 @bytecodealliance/preview2-shim@0.25.0 esbuild@0.28.2 typescript@5.9.3"

command -v node >/dev/null || { echo "node not found: install Node 20 or newer" >&2; exit 1; }
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "Node $(node --version) is too old: componentize-js needs Node 20 or newer" >&2
    exit 1
fi
componentize="$tools/node_modules/@bytecodealliance/componentize-js/src/cli.js"
if [ ! -x "$tools/node_modules/.bin/esbuild" ] || [ ! -x "$tools/node_modules/.bin/tsc" ] || [ ! -f "$componentize" ]; then
    cat >&2 <<MSG
JS build tools not found in $tools (PROJECTOR_JS_TOOLS). Install them:
    mkdir -p "$tools" && npm install --prefix "$tools" --save-exact $packages
MSG
    exit 1
fi

"$tools/node_modules/.bin/tsc" -p . --outDir "$out/.tsc"
mkdir -p "$out/.bundle/node_modules/@projector"
# The SDK copy as the package `@projector/sdk`, for esbuild's resolution.
ln -sfn "$PWD/sdk" "$out/.bundle/node_modules/@projector/sdk"
bundle="$(cd "$out/.bundle" && pwd)"
NODE_PATH="$bundle/node_modules:$tools/node_modules" "$tools/node_modules/.bin/esbuild" "$out/.tsc/index.js" \
    --bundle --format=esm --platform=neutral --target=es2022 \
    --main-fields=module,main --external:'projector:*' \
    --log-level=warning --outfile="$out/.bundle/{{name}}.js"
# `http` and `fetch-event` are off: the host links no wasi:http.
node "$componentize" "$out/.bundle/{{name}}.js" \
    --wit wit --world-name projection --disable http fetch-event --out "$out/{{name}}.wasm"
echo "$out/{{name}}.wasm"
