#!/usr/bin/env bash
# Builds {{name}} into a WebAssembly component: <OUT_DIR or build>/{{name}}.wasm
#
#   ./build.sh            # -> build/{{name}}.wasm
#   ./build.sh OUT_DIR    # -> OUT_DIR/{{name}}.wasm
#
# Needs componentize-py 0.25.1: the one on PATH, or the one COMPONENTIZE_PY
# names (e.g. COMPONENTIZE_PY=.venv/bin/componentize-py ./build.sh).
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-build}"
version=0.25.1
tool="${COMPONENTIZE_PY:-componentize-py}"

if ! found="$("$tool" --version 2>/dev/null)"; then
    cat >&2 <<MSG
componentize-py not found (looked for \`$tool\`). Install it:
    python3 -m venv .venv && .venv/bin/pip install componentize-py==$version
then build with:
    COMPONENTIZE_PY=.venv/bin/componentize-py ./build.sh
MSG
    exit 1
fi
if [ "$found" != "componentize-py $version" ]; then
    echo "warning: $found found, this project is tested with componentize-py $version" >&2
fi

# Bundle only what the module needs: the app and the SDK (tests excluded).
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
find . -maxdepth 1 -name '*.py' ! -name 'test_*.py' -exec cp {} "$stage/" \;
cp -r sdk/projector_sdk "$stage/"
find "$stage" -name __pycache__ -prune -exec rm -rf {} +

mkdir -p "$out"
"$tool" --quiet -d wit -w projection componentize -p "$stage" app -o "$out/{{name}}.wasm"
echo "$out/{{name}}.wasm"
