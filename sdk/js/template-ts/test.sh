#!/usr/bin/env bash
# Native unit tests under Node, no host needed: compiles src/ with tsc into
# build/.tsc, then runs test.js against it.
set -euo pipefail
cd "$(dirname "$0")"
tools="${PROJECTOR_JS_TOOLS:-$HOME/.cache/projector/js-tools}"
[ -x "$tools/node_modules/.bin/tsc" ] || {
    echo "tsc not found in $tools (PROJECTOR_JS_TOOLS): see README.md, Tools" >&2
    exit 1
}
"$tools/node_modules/.bin/tsc" -p . --outDir build/.tsc
node --harmony-json-parse-with-source --import ./sdk/testing/register.js --test test.js
