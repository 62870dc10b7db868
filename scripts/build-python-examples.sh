#!/usr/bin/env bash
# Builds the Python example projections (examples/python/*) into Wasm
# components at target/guests/python/<name>.wasm, with componentize-py from
# PyPI, installed into a virtualenv at target/tools/python if missing.
#
# Idempotent: a module is rebuilt only when its inputs (the example, the
# Python SDK, the WIT contract, the componentize-py version) changed, since
# componentize-py does not build reproducibly (every build has another
# hash, so the host would see a new version).
#
#   ./scripts/build-python-examples.sh           # all examples
#   ./scripts/build-python-examples.sh order-totals
#   FORCE=1 ./scripts/build-python-examples.sh   # rebuild even if unchanged
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

COMPONENTIZE_PY_VERSION=0.25.1
venv="$root/target/tools/python"
out_dir="$root/target/guests/python"
tool="$venv/bin/componentize-py"

if ! "$tool" --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY_VERSION"; then
    echo "installing componentize-py $COMPONENTIZE_PY_VERSION into $venv" >&2
    command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
    rm -rf "$venv"
    if python3 -m venv "$venv" >/dev/null 2>&1 && [ -x "$venv/bin/pip" ]; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "componentize-py==$COMPONENTIZE_PY_VERSION"
    else
        # No venv module (Debian without python3-venv): pip into a folder,
        # and a wrapper that puts it on the path.
        rm -rf "$venv"
        python3 -m pip install --quiet --disable-pip-version-check \
            --target "$venv/site" "componentize-py==$COMPONENTIZE_PY_VERSION"
        mkdir -p "$venv/bin"
        cat >"$tool" <<WRAPPER
#!/bin/sh
PYTHONPATH="$venv/site" exec python3 -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' "\$@"
WRAPPER
        chmod +x "$tool"
    fi
fi

if [ "$#" -gt 0 ]; then
    names=("$@")
else
    names=()
    for dir in examples/python/*/; do
        [ -f "$dir/app.py" ] && names+=("$(basename "$dir")")
    done
fi

# What a build reads: the app (tests excluded), the SDK, the WIT, the tool.
sources() {
    find "examples/python/$1" sdk/python/projector_sdk wit -type f \
        \( -name '*.py' -o -name '*.wit' \) ! -name 'test_*.py' ! -path '*/__pycache__/*' |
        LC_ALL=C sort
}

mkdir -p "$out_dir"
for name in "${names[@]}"; do
    app_dir="examples/python/$name"
    [ -f "$app_dir/app.py" ] || { echo "no $app_dir/app.py" >&2; exit 1; }
    wasm="$out_dir/$name.wasm"
    stamp="$out_dir/$name.inputs"
    digest="$( { echo "componentize-py $COMPONENTIZE_PY_VERSION"; sources "$name" | xargs sha256sum; } | sha256sum | cut -d' ' -f1)"
    if [ -z "${FORCE:-}" ] && [ -f "$wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
        echo "$wasm (up to date)"
        continue
    fi
    # Bundle only what the module needs: the app's modules and the SDK.
    stage="$(mktemp -d)"
    trap 'rm -rf "$stage"' EXIT
    find "$app_dir" -maxdepth 1 -name '*.py' ! -name 'test_*.py' -exec cp {} "$stage/" \;
    cp -r sdk/python/projector_sdk "$stage/"
    find "$stage" -name __pycache__ -prune -exec rm -rf {} +
    start=$(date +%s.%N)
    "$tool" --quiet -d wit -w projection componentize -p "$stage" app -o "$wasm.tmp"
    mv "$wasm.tmp" "$wasm"
    echo "$digest" >"$stamp"
    rm -rf "$stage"
    trap - EXIT
    echo "$wasm ($(stat -c %s "$wasm") bytes, built in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }") s)"
done
